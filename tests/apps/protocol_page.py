"""An ASGI app whose one page tells, in <p id="status">, the protocol it came over
(``nextHopProtocol`` of the Navigation Timing entry): for browsers talking to peers."""
from __future__ import annotations

PAGE = b"""<!doctype html>
<html><head><title>protocol</title></head><body>
<p id="status">script did not run</p>
<script>
  var page = performance.getEntriesByType("navigation")[0];
  document.getElementById("status").textContent = "Page loaded over " + page.nextHopProtocol;
</script>
</body></html>
"""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(PAGE)).encode())]})
    await send({"type": "http.response.body", "body": PAGE})
