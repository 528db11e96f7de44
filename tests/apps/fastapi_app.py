"""A FastAPI app: JSON bodies, validation errors, async and plain (thread pool) endpoints,
a WebSocket endpoint with a path and a query parameter."""
from __future__ import annotations

from fastapi import FastAPI, WebSocket, WebSocketException, status
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.post("/items")
async def create_item(item: Item) -> dict:
    return {"name": item.name, "price_with_tax": round(item.price * 1.2, 2), "tags": item.tags}


@app.get("/items/{item_id}")
def read_item(item_id: int, q: str | None = None) -> dict:
    return {"item_id": item_id, "q": q}


@app.websocket("/rooms/{room}")
async def chat_room(websocket: WebSocket, room: str, token: str | None = None) -> None:
    """Answers each text message with JSON; without the token, refused (1008, so 403)."""
    if token != "secret":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_json({"room": room, "text": text})
