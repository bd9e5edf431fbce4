"""Methods added to each vLLM worker (vLLM's `worker_extension_cls`), called by name with `collective_rpc`.

Runs inside vLLM's worker processes, where `self` is vLLM's worker.
"""

from __future__ import annotations


class OmniWorkerExtension:
    """Lets the engine replace the weights of the running model without restarting it."""

    def omni_load_weights(self, path: str) -> int:
        """Load the tensors of the safetensors file `path` (checkpoint names) into the model; returns how many.

        Goes through vLLM's `reload_weights`, which maps checkpoint names onto the model's fused, sharded
        parameters and redoes what vLLM did to them after the first load (the CPU backend repacks linear
        weights for its kernels; LoRA wraps layers), then drops what was derived from the old weights.
        """
        from safetensors import safe_open

        with safe_open(path, framework="pt", device="cpu") as handle:
            names = list(handle.keys())
            self.reload_weights(weights_iterator=((name, handle.get_tensor(name)) for name in names))  # type: ignore[attr-defined]
        self._omni_refresh_tied_head()
        return len(names)

    def _omni_refresh_tied_head(self) -> None:
        """Redo the output head's kernel preparation when it shares the input embedding's weight.

        The checkpoint has no separate head weight to reload, so vLLM's reload puts the head's old prepared
        tensors back; on the CPU backend those include a packed copy of the old weight. The shared weight
        itself was updated in place with the embedding, so preparing the head again picks the new values up.
        """
        model = self.model_runner.model  # type: ignore[attr-defined]
        head = getattr(model, "lm_head", None)
        config = getattr(model, "config", None)
        if head is None or not getattr(config, "tie_word_embeddings", False):
            return
        method = getattr(head, "quant_method", None)
        if method is not None:
            method.process_weights_after_loading(head)
