"""labkit.onnx: a fine-tuned model as ONNX, run with onnxruntime-genai.

- `labkit.onnx.build`          export (merge, fp32 or int4) and the multi-adapter base; `.onnx_adapter` files for a base
- `labkit.onnx.serve`          run an export: `GenAIModel`, `MultiAdapterModel` (an adapter per request), parity with PyTorch
- `labkit.onnx.adapter_files`  read and check adapters on disk without a model: PEFT folders and `.onnx_adapter` files
"""
