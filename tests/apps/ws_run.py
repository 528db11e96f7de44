"""Seed 001's ``ws_run.py``: the Quart WebSocket echo Hypercorn serves over HTTP/1, 2 and 3.

As the article has it, except for the route decorator its text lost (the
article opens the echo at ``wss://localhost/ws``).
"""
from quart import Quart, websocket

app = Quart(__name__)


@app.websocket("/ws")
async def ws():
    while True:
        data = await websocket.receive()
        await websocket.send(data)
