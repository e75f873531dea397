/*
 * wsframe: the header of a WebSocket frame a server sends (RFC 6455 5.2):
 * FIN and opcode, no mask, the payload length in 7, 16 or 64 bits; and the
 * UTF-8 check a text frame's payload must pass. Pure; ws.c frames a batch of
 * queued messages with it for one send().
 */
#ifndef KWS_WSFRAME_H
#define KWS_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSFRAME_TEXT 0x1
#define WSFRAME_BINARY 0x2
#define WSFRAME_CLOSE 0x8 /* payload: code (2 bytes, big-endian), reason; at most 125 */
#define WSFRAME_PING 0x9
/* The longest header wsframe_header writes. */
#define WSFRAME_MAX_HEADER 10

/* Writes the header of a final, unmasked frame with opcode (WSFRAME_TEXT,
 * WSFRAME_BINARY or WSFRAME_CLOSE; only its low 4 bits are used) and a payload of len bytes
 * into out[0..WSFRAME_MAX_HEADER). Returns the header's length: 2 (len <
 * 126), 4 (len < 65536) or 10. */
size_t wsframe_header(unsigned char *out, unsigned opcode, uint64_t len);

/* The length of the header wsframe_header writes for a payload of len. */
size_t wsframe_header_len(uint64_t len);

/* True if p[0..len) is valid UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), as a text frame's payload must be
 * (RFC 6455 5.6). Any byte values, control characters included. */
bool wsframe_utf8_valid(const unsigned char *p, size_t len);

#endif
