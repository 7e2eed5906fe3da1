"""`export`: a model in the formats it ships in (`formats`), int8 through ONNX Runtime's static
quantization (`quantize`), and the ONNX file run again for its accuracy and speed (`runtime`).
The stage after training: it reads checkpoints and specs, nothing here trains."""

from .formats import (
    FORMATS,
    METADATA_FILE,
    Exportable,
    export,
    load_exportable,
    metadata,
    onnx_model,
    require,
    untrained_exportable,
)

__all__ = [
    "FORMATS",
    "METADATA_FILE",
    "Exportable",
    "export",
    "load_exportable",
    "metadata",
    "onnx_model",
    "require",
    "untrained_exportable",
]
