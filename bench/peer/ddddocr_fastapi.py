"""The peer aiocr is compared with: ddddocr served the way ddddocr-fastapi serves it.

ddddocr-fastapi (the official FastAPI wrapper) exposes POST /ocr taking a multipart `file` or a
base64 `image` form field, and calls `DdddOcr().classification` synchronously inside an async
endpoint on uvicorn. This file does the same with ddddocr 1.6.1 so both servers answer the
same images in one run; bench/compare.sh installs it into a virtualenv and starts it with
`uvicorn ddddocr_fastapi:app`.
"""
import base64
from typing import Optional

import ddddocr
from fastapi import FastAPI, File, Form, UploadFile

app = FastAPI()
ocr = ddddocr.DdddOcr(show_ad=False)


@app.post("/ocr")
async def ocr_endpoint(
    file: Optional[UploadFile] = File(None),
    image: Optional[str] = Form(None),
    probability: bool = Form(False),
    png_fix: bool = Form(False),
):
    if file is None and image is None:
        return {"code": 400, "message": "Either file or image must be provided", "data": None}
    try:
        if file is not None:
            data = await file.read()
        else:
            data = base64.b64decode(image.split(",", 1)[1] if image.startswith("data:") else image)
        result = ocr.classification(data, probability=probability, png_fix=png_fix)
        return {"code": 200, "message": "Success", "data": result}
    except Exception as error:  # the peer answers errors in its body, as ddddocr-fastapi does
        return {"code": 500, "message": str(error), "data": None}
