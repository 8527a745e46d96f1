"""uvicorn's HTTP protocol, accepting a request line sent as raw UTF-8.

`curl 'http://127.0.0.1:8000/api/search?q=语言模型'` sends the Chinese bytes as they
are (browsers percent-encode them, curl and many scripts do not). Both of uvicorn's
parsers, httptools (llhttp) and h11, answer a byte above 0x7f in the request line with
400 before the application sees anything, so no ASGI middleware can help. Here those
bytes are percent-encoded on their way into the parser, exactly as a browser would have
sent them; the app then decodes ``q`` as usual. Headers and bodies pass untouched.
"""

from __future__ import annotations

import re

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HIGH = re.compile(rb"[\x80-\xff]")


def quote_high_bytes(line: bytes) -> bytes:
    """%XX for every byte above 0x7f (UTF-8 is kept byte for byte: 语 -> %E8%AF%AD)."""
    return line if line.isascii() else _HIGH.sub(lambda m: b"%%%02X" % m.group(0)[0], line)


class Utf8TargetProtocol(HttpToolsProtocol):
    """HttpToolsProtocol (what uvicorn picks by default here) whose request lines may hold UTF-8.

    Only bytes known to be a request line are touched: those that arrive while the parser
    waits for a new request (between on_message_complete and the next on_message_begin),
    up to the line's end, which may come in a later chunk. A request pipelined behind
    another in the same chunk reaches the parser unchanged (and gets the parser's own
    answer), so a body or a header is never rewritten."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_request = True   # the next byte starts a request (or blank lines before one)
        self._in_request_line = False   # a request line began in an earlier chunk and has not ended

    def data_received(self, data: bytes) -> None:
        if self._awaiting_request or self._in_request_line:
            # blank lines may come before a request line (RFC 9112, 2.2)
            start = 0 if self._in_request_line else len(data) - len(data.lstrip(b"\r\n"))
            if start < len(data):
                end = data.find(b"\n", start)
                self._in_request_line = end < 0
                end = len(data) if end < 0 else end
                data = data[:start] + quote_high_bytes(data[start:end]) + data[end:]
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._awaiting_request = False
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._awaiting_request = True
        super().on_message_complete()
