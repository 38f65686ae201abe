"""``torchclf serve``: a model behind an HTTP JSON service (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from torchclf.cli import app
from torchclf.cli.inputs import onnx_path, resolve_model_path
from torchclf.cli.output import examples

ModelPath = Annotated[
    Path, typer.Argument(help="A model file, or a run folder holding model.safetensors.")
]


@app.command(
    epilog=examples(
        "torchclf serve runs/circles                       # http://127.0.0.1:8000/docs",
        "torchclf serve runs/patients --port 9000 --max-batch-size 256",
        "torchclf serve runs/patients --engine onnx        # through its exported model.onnx",
    )
)
def serve(
    model: ModelPath,
    host: Annotated[
        str, typer.Option(help="The address to listen on; 0.0.0.0 serves other machines too.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8000,
    max_batch_size: Annotated[
        int,
        typer.Option(help="Rows of concurrent requests predicted together; 1: each alone."),
    ] = 64,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a request waits for others to join its batch.")
    ] = 2.0,
    max_queue_rows: Annotated[
        int, typer.Option(help="Rows waiting beyond which a request answers 503 at once.")
    ] = 100_000,
    runtime: Annotated[
        str,
        typer.Option(
            "--engine",
            help="torch, or onnx: the model's ONNX export under ONNX Runtime.",
        ),
    ] = "torch",
) -> None:
    """Serve a model over HTTP: POST /predict, GET /health, GET /model, and /docs.

    POST /predict takes rows as records ({"rows": [{"age": 61, "city": "north"}]}) or columns
    ({"columns": {"age": [61], "city": ["north"]}}), raw values with null for a missing one, and
    answers labels and probabilities in the request's order; a row the model cannot read answers
    422 naming the row and the column. Concurrent requests are predicted in shared batches. Needs
    pip install 'torchclf[serve]'.
    """
    if runtime not in ("torch", "onnx"):
        message = f"expected torch or onnx, got {runtime!r}"
        raise typer.BadParameter(message, param_hint="'--engine'")
    import torchclf

    classifier = torchclf.load(resolve_model_path(model))
    predict = None
    if runtime == "onnx":
        predict = torchclf.OnnxModel(onnx_path(model), classifier.encoder).predict_proba
    typer.echo(f"serving {model} on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    torchclf.serve(
        classifier,
        host=host,
        port=port,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_queue_rows=max_queue_rows,
        predict_proba=predict,
    )
