"""An HTTP JSON service for a classifier (``torchclf serve``): FastAPI, run by uvicorn.

- ``POST /predict``: rows as records (``{"rows": [{"age": 61, "city": "north"}, ...]}``) or as
  columns (``{"columns": {"age": [61, 48], "city": ["north", null]}}``), raw values with
  ``null`` for a missing one; the model file's own preprocessing is applied. The answer keeps the
  request's order: ``{"labels": [...], "probabilities": [[...], ...], "classes": [...]}``.
- ``GET /health``: ``{"status": "ok"}``; ``GET /model``: what ``torchclf info`` says.
- The OpenAPI schema (``/openapi.json``, ``/docs``) is generated from the model's features: each
  column by its name, numbers as numbers and categories as text, so a row the model cannot read
  answers 422 naming the row and the column before it reaches the model.

Concurrent requests are micro-batched (:class:`MicroBatcher`): a request's rows wait up to
``max_wait_ms`` for others to join, up to ``max_batch_size`` rows, then go through the model
together, off the event loop; each request gets its own rows back. When more than
``max_queue_rows`` rows are waiting, a request answers 503 at once instead of queuing without
bound.
"""

from __future__ import annotations

import asyncio
import itertools
import warnings
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, cast

import numpy as np

from torchclf.encoders import TableEncoder
from torchclf.errors import ConfigError, TorchclfError
from torchclf.serving.export import feature_fields
from torchclf.version import __version__

if TYPE_CHECKING:
    from fastapi import FastAPI

    from torchclf.classifier import Classifier

DEFAULT_HOST = "127.0.0.1"  # loopback unless told otherwise: a model is not public by default


class Overloaded(Exception):
    """More rows are waiting than the service holds: answered 503."""


class MicroBatcher:
    """Requests' rows gathered into shared batches for ``predict``, answered in order.

    A request is a payload and its number of rows. ``predict`` maps a batch's payloads, in order,
    to all their rows' probabilities ``(rows, K)``; it runs on one worker thread, so the event
    loop keeps taking requests while the model works, and builds one table for the batch (the
    requests only gather their values).
    """

    def __init__(
        self,
        predict: Callable[[list[Any]], np.ndarray],
        max_batch_size: int,
        max_wait_ms: float,
        max_queue_rows: int,
    ) -> None:
        self.predict = predict
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self.max_queue_rows = max_queue_rows
        self.waiting_rows = 0
        self.queue: asyncio.Queue[tuple[Any, int, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchclf-model")
        self.batches = 0  # how many batches the model ran (for tests and the load benchmark)

    async def submit(self, payload: Any, rows: int) -> np.ndarray:
        """The probabilities ``(rows, K)`` of ``payload``'s rows, from the batch they joined.

        Raises:
            Overloaded: when too many rows are waiting already.
        """
        if self.waiting_rows + rows > self.max_queue_rows:
            raise Overloaded(f"{self.waiting_rows} rows are waiting; retry shortly")
        loop = asyncio.get_running_loop()
        if self.worker is None or self.worker.done() or self.worker.get_loop() is not loop:
            # started here as well as at start-up: a host that skips the app's lifespan (or
            # runs each request in a loop of its own) still gets its answers
            self.queue, self.waiting_rows = asyncio.Queue(), 0
            self.worker = loop.create_task(self.run())
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self.waiting_rows += rows
        await self.queue.put((payload, rows, future))
        return await future

    async def run(self) -> None:
        """Forever: take the first waiting request, gather more for ``max_wait``, predict."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            rows = batch[0][1]
            deadline = loop.time() + self.max_wait
            while rows < self.max_batch_size:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), remaining)
                    except TimeoutError:
                        break
                batch.append(item)
                rows += item[1]
            self.waiting_rows -= rows
            payloads = [payload for payload, _, _ in batch]
            try:
                probabilities = await loop.run_in_executor(self.executor, self.predict, payloads)
            except Exception as error:  # each request of the batch hears of it
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches += 1
            start = 0
            for _, size, future in batch:
                if not future.done():  # (a client that went away cancelled its own)
                    future.set_result(probabilities[start : start + size])
                start += size


def model_info(classifier: Classifier) -> dict[str, Any]:
    """What ``GET /model`` answers: the task, classes, features, network and training."""
    from torchclf.nn.models import count_parameters

    config = classifier.model_config
    return {
        "task": classifier.task.to_dict(),
        "classes": [str(name) for name in classifier.task.class_names],
        "features": [{"name": n, "kind": k} for n, k in feature_fields(classifier.encoder)],
        "preprocessing": classifier.encoder.describe(),
        "hidden": list(config.hidden),
        "activation": config.activation,
        "ensemble": config.ensemble,
        "parameters": count_parameters(classifier.model),
        "training": classifier.training_summary,
        "torchclf_version": __version__,
    }


def create_app(
    classifier: Classifier,
    *,
    max_batch_size: int = 64,
    max_wait_ms: float = 2.0,
    max_queue_rows: int = 100_000,
    predict_proba: Callable[[Any], np.ndarray] | None = None,
) -> FastAPI:
    """The service for ``classifier``; ``predict_proba`` replaces its own (an ONNX model's).

    ``max_batch_size`` 1 answers each request alone (no micro-batching).

    Raises:
        ConfigError: without FastAPI (``pip install 'torchclf[serve]'``), or for bad settings.
    """
    try:
        import pydantic
        from fastapi import FastAPI, HTTPException
        from fastapi.exceptions import RequestValidationError
    except ImportError as error:
        raise ConfigError(
            "torchclf serve needs FastAPI and uvicorn: pip install 'torchclf[serve]'"
        ) from error
    if max_batch_size < 1 or max_wait_ms < 0 or max_queue_rows < 1:
        raise ConfigError(
            "max_batch_size and max_queue_rows must be at least 1 and max_wait_ms at least 0; "
            f"got {max_batch_size}, {max_queue_rows} and {max_wait_ms}"
        )
    import pandas as pd

    fields = feature_fields(classifier.encoder)
    names = [name for name, _ in fields]
    # a number the model's precision holds (the preprocessing refuses others): the schema says so
    import torch

    largest = torch.finfo(next(classifier.model.parameters()).dtype).max
    number = Annotated[float, pydantic.Field(ge=-largest, le=largest)] | None
    category = str | int | float | bool | None
    strict = pydantic.ConfigDict(extra="forbid")
    row_model = pydantic.create_model(  # type: ignore[call-overload]
        "Row",
        __config__=strict,
        **{
            f"f{i}": (number if kind == "numeric" else category, pydantic.Field(alias=name))
            for i, (name, kind) in enumerate(fields)
        },
    )
    columns_model = pydantic.create_model(  # type: ignore[call-overload]
        "Columns",
        __config__=strict,
        **{
            f"f{i}": (
                list[number] if kind == "numeric" else list[category],
                pydantic.Field(alias=name),
            )
            for i, (name, kind) in enumerate(fields)
        },
    )

    # made at run time, as the rows' models are (this module's annotations are text, which
    # FastAPI could not resolve to classes defined in this function)
    # rows as records, or as columns: one of the two, as the schema says
    rows_request = pydantic.create_model(
        "RowsRequest",
        __config__=strict,
        rows=(list[row_model], ...),  # type: ignore[valid-type]
    )
    columns_request = pydantic.create_model(
        "ColumnsRequest", __config__=strict, columns=(columns_model, ...)
    )
    response_model = pydantic.create_model(
        "PredictResponse",
        labels=(list[str] | list[list[str]], ...),
        probabilities=(list[list[float]], ...),
        classes=(list[str], ...),
    )

    predict = predict_proba or classifier.predict_proba
    is_table = isinstance(classifier.encoder, TableEncoder) or classifier.feature_names is not None

    def probabilities_of(payloads: list[dict[str, list[Any]]]) -> np.ndarray:
        """A batch's requests (each its columns' values) as one table, predicted."""
        frame = pd.DataFrame(
            {name: list(itertools.chain.from_iterable(p[name] for p in payloads)) for name in names}
        )
        for name, kind in fields:  # null in a numeric column: a missing value (NaN)
            if kind == "numeric":
                frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
        with warnings.catch_warnings():  # unseen categories: answered, not logged per row
            warnings.simplefilter("ignore")
            return predict(frame if is_table else frame.to_numpy(dtype=np.float32))

    batcher = MicroBatcher(probabilities_of, max_batch_size, max_wait_ms, max_queue_rows)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if batcher.worker is not None:
                batcher.worker.cancel()
            batcher.executor.shutdown(wait=False)

    app = FastAPI(
        title=f"torchclf: {classifier.task.name} classifier",
        version=__version__,
        description=f"Predicts {', '.join(map(str, classifier.task.class_names))} from "
        f"{', '.join(names)}.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    classes = [str(name) for name in classifier.task.class_names]
    info = model_info(classifier)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    async def model() -> dict[str, Any]:
        return info

    def invalid(where: list[str], message: str) -> RequestValidationError:
        """A 422 in FastAPI's own shape, which the schema declares."""
        return RequestValidationError([{"type": "value_error", "loc": where, "msg": message}])

    async def predict_rows(request: Any) -> dict[str, Any]:
        if isinstance(request, rows_request):
            records = [row.model_dump(by_alias=True) for row in cast(Any, request).rows]
            values = {name: [record[name] for record in records] for name in names}
            rows = len(records)
        else:
            values = cast(Any, request.columns).model_dump(by_alias=True)
            lengths = {name: len(column) for name, column in values.items()}
            if len(set(lengths.values())) > 1:
                raise invalid(["body", "columns"], f"the columns differ in length: {lengths}")
            rows = next(iter(lengths.values()), 0)
        if rows == 0:
            return {"labels": [], "probabilities": [], "classes": classes}
        try:
            probabilities = await batcher.submit(values, rows)
        except Overloaded as error:
            raise HTTPException(503, f"overloaded: {error}") from error
        except TorchclfError as error:  # what the preprocessing refuses, named
            raise invalid(["body"], str(error)) from error

        decided = classifier.task.decide(torch.from_numpy(probabilities)).numpy()
        if decided.ndim == 2:  # label sets
            labels: Any = [[c for c, on in zip(classes, row, strict=True) if on] for row in decided]
        else:
            labels = [classes[i] for i in decided]
        return {"labels": labels, "probabilities": probabilities.tolist(), "classes": classes}

    def shape(body: Any) -> str:
        """Which of the two a body is, so that a bad one hears only of its own shape."""
        return "columns" if isinstance(body, dict) and "rows" not in body else "rows"

    request_model = Annotated[
        Annotated[rows_request, pydantic.Tag("rows")]  # type: ignore[valid-type]
        | Annotated[columns_request, pydantic.Tag("columns")],  # type: ignore[valid-type]
        pydantic.Discriminator(shape),
    ]
    predict_rows.__annotations__ |= {"request": request_model, "return": dict[str, Any]}
    overloaded: dict[int | str, dict[str, Any]] = {
        503: {"description": "Too many rows waiting: retry shortly"}
    }
    app.post("/predict", response_model=response_model, responses=overloaded)(predict_rows)
    return app


def serve(
    classifier: Classifier,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    **settings: Any,
) -> None:
    """Run :func:`create_app`'s service with uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError as error:
        raise ConfigError(
            "torchclf serve needs FastAPI and uvicorn: pip install 'torchclf[serve]'"
        ) from error
    uvicorn.run(create_app(classifier, **settings), host=host, port=port, log_level="warning")


__all__ = ["DEFAULT_HOST", "MicroBatcher", "Overloaded", "create_app", "model_info", "serve"]
