"""The hfgpt model configuration: `HfGptConfig`, saved as the model folder's `config.json`.

It holds the architecture hyperparameters of the GPT-2 style decoder in `modeling_hfgpt.py`, under the
standard transformers field names. Training settings live elsewhere. Like transformers' own configs it accepts
any combination, since tools build configs field by field; the model checks what it needs when it is built.
"""

from typing import ClassVar

from transformers import PreTrainedConfig


class HfGptConfig(PreTrainedConfig):
    r"""Configuration of a GPT-2 style decoder-only language model.

    Args:
        vocab_size: Number of tokens in the vocabulary.
        hidden_size: Width of the residual stream (embedding size).
        intermediate_size: Width of the MLP hidden layer; `None` means `4 * hidden_size`.
        num_hidden_layers: Number of decoder blocks.
        num_attention_heads: Number of attention heads; must divide `hidden_size`.
        max_position_embeddings: Longest sequence the learned position embeddings cover.
        hidden_act: MLP activation, a key of `transformers.activations.ACT2FN` (GPT-2 uses `"gelu_new"`).
        dropout: Dropout probability on the embeddings, the attention probabilities and both residual
            branches.
        bias: Whether the linear layers and LayerNorms have a bias (GPT-2: `True`).
        layer_norm_eps: Epsilon of the LayerNorms.
        initializer_range: Standard deviation of the normal weight init; the residual output projections
            use `initializer_range / sqrt(2 * num_hidden_layers)`.
        tie_word_embeddings: Whether the LM head shares its weight with the token embedding.
        use_cache: Whether the model returns a key/value cache by default.
        bos_token_id: Id of the beginning-of-sequence token, if any.
        eos_token_id: Id of the end-of-sequence token, if any.
        pad_token_id: Id of the padding token, if any.
    """

    model_type = "hfgpt"
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["cache", "past_key_values"]  # the name since 5.24, before

    def __init__(
        self,
        vocab_size: int = 256,
        hidden_size: int = 128,
        intermediate_size: int | None = None,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        max_position_embeddings: int = 256,
        hidden_act: str = "gelu",
        dropout: float = 0.0,
        bias: bool = False,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        tie_word_embeddings: bool = True,
        use_cache: bool = True,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size if intermediate_size is not None else 4 * hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.hidden_act = hidden_act
        self.dropout = dropout
        self.bias = bias
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        # The v5 base config no longer declares these; without `tie_word_embeddings` nothing is tied.
        self.tie_word_embeddings = tie_word_embeddings
        self.use_cache = use_cache
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        super().__init__(**kwargs)


__all__ = ["HfGptConfig"]
