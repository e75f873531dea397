import unittest

from kws_client import Backoff, Data, Position, ProtocolError, Status, close_policy, parse_message, parse_position


class ProtocolTest(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(parse_message("s live 3 1200\n"), Status("live", 3, 1200))
        self.assertEqual(parse_message(b"d 3 1234\n{\"a\":1}\nmore"), Data(3, 1234, b"{\"a\":1}\nmore"))
        self.assertEqual(parse_message("d 0 7\nt\u00e9xt"), Data(0, 7, "t\u00e9xt"))
        self.assertEqual(parse_message(b"s incomplete 5 99\n"), Status("incomplete", 5, 99))
        self.assertEqual(parse_message(b"d 1 2\n").body, b"")

    def test_refuses(self):
        for bad in ["no newline", "x 1 2\n", "d 1\n", "d -1 2\nv", "d 1 2.5\n", "s live 1\n",
                    "d 1 99999999999999999\n", b"hello", 42]:
            with self.assertRaises(ProtocolError, msg=repr(bad)):
                parse_message(bad)

    def test_positions(self):
        self.assertEqual(parse_position("3:1234"), Position(3, 1234))
        self.assertEqual(str(Position(3, 1234)), "3:1234")
        self.assertEqual(parse_position((0, 0)), Position(0, 0))
        for bad in ["", "3", "3:", ":4", "-1:2", "1:-2", "a:b", "1:2:3", None, (-1, 0)]:
            self.assertIsNone(parse_position(bad), repr(bad))

    def test_close_policy(self):
        half = lambda: 0.5
        for code in (1007, 1009, 4001, 4003):
            self.assertEqual(close_policy(code, 0).action, "stop")
        d = close_policy(1012, 0, Backoff(), half)
        self.assertEqual(d.action, "reconnect")
        self.assertLessEqual(d.delay_s, 0.1)
        self.assertEqual(close_policy(4008, 0, Backoff(), half).delay_s, 0)
        self.assertEqual(close_policy(1013, 0, Backoff(try_again_s=3), half).delay_s, 3)
        for code in (1001, 1006, 4002, 1011):
            d = close_policy(code, 0, Backoff(initial_s=0.2), half)
            self.assertEqual((d.action, round(d.delay_s, 6)), ("reconnect", 0.15))

    def test_backoff(self):
        b = Backoff(initial_s=0.1, max_s=5, factor=2, jitter=0.5)
        got = [round(close_policy(1006, f, b, lambda: 0).delay_s, 6) for f in (0, 1, 2, 3, 4, 5, 6, 10)]
        self.assertEqual(got, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5])
        self.assertGreaterEqual(close_policy(1006, 3, b, lambda: 0.999999).delay_s, 0.4)
        self.assertGreater(len({close_policy(1006, 3, b).delay_s for _ in range(50)}), 10)


if __name__ == "__main__":
    unittest.main()
