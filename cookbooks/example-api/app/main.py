"""A minimal FastAPI service: the one-container example cookbook."""
from fastapi import FastAPI

app = FastAPI(title="example-api")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/items/{item_id}")
def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}
