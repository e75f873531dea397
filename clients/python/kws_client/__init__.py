"""asyncio client for kafka-websocket-router's kws.v1 subprotocol."""

from .client import FileStorage, KwsClient, MemoryStorage, Record, Stopped
from .protocol import (FATAL_CODES, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, Backoff, Data,
                       Position, ProtocolError, Status, close_policy, format_position,
                       parse_message, parse_position)

__all__ = ["KwsClient", "Record", "Stopped", "MemoryStorage", "FileStorage", "Backoff",
           "Position", "Data", "Status", "ProtocolError", "parse_message", "parse_position",
           "format_position", "close_policy", "FATAL_CODES", "SUBPROTOCOL",
           "TOKEN_SUBPROTOCOL_PREFIX"]
