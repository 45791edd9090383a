"""Reading one HTTP/1.1 response from an asyncio stream, shared by the bench's load
drivers (stdlib only, so the scripts need no HTTP client package)."""


async def read_response(reader):
    """Returns (status, body, close): close is True when the server will not reuse the
    connection. Raises ConnectionError when the connection ends before a full head."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed before a status line")
    status = int(status_line.split()[1])
    length, chunked, close = None, False, False
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed in headers")
        if line in (b"\r\n", b"\n"):
            break
        k, _, v = line.decode("latin-1").partition(":")
        k, v = k.strip().lower(), v.strip()
        if k == "content-length":
            length = int(v)
        elif k == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
        elif k == "connection" and v.lower() == "close":
            close = True
    if chunked:
        data = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            data += await reader.readexactly(size)
            await reader.readline()
    elif length is not None:
        data = await reader.readexactly(length)
    else:
        data = await reader.read()
        close = True
    return status, data, close
