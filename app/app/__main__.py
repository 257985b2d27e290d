"""The serving app of the bundled example: a FastAPI app served by uvicorn."""

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "env": os.environ.get("PYTHONUNBUFFERED", "")}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="0.0.0.0", port=8000)
