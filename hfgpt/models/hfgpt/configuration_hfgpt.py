"""The hfgpt model configuration: `HfGptConfig`, saved as the model folder's `config.json`.

It holds the architecture hyperparameters of the decoder in `modeling_hfgpt.py`, under the standard
transformers field names. Training settings live elsewhere. Like transformers' own configs it accepts any
combination, since tools build configs field by field; the model checks what it needs when it is built.

The defaults are the GPT-2 block hfgpt has always built, so a `config.json` saved before the architecture
options existed loads as the same model. `position_embedding_type="rotary"`, `norm_type="rmsnorm"`,
`mlp_type="gated"` with `hidden_act="silu"`, fewer `num_key_value_heads` and `bias=False` make a Llama block.
The recipe options of the speed records (`qk_norm`, `hidden_act="relu2"`, `logit_softcap`,
`zero_init_output_projections`, an untied head) and `document_masking` are off by default, for the same reason.
"""

from typing import ClassVar

from transformers import PreTrainedConfig

POSITION_EMBEDDING_TYPES = ("absolute", "rotary")
NORM_TYPES = ("layernorm", "rmsnorm")
MLP_TYPES = ("standard", "gated")


class HfGptConfig(PreTrainedConfig):
    r"""Configuration of a decoder-only language model: a GPT-2 block by default, a Llama block by option.

    Args:
        vocab_size: Number of tokens in the vocabulary.
        hidden_size: Width of the residual stream (embedding size).
        intermediate_size: Width of the MLP hidden layer (for a gated MLP, of each of its two branches);
            `None` means `4 * hidden_size`.
        num_hidden_layers: Number of decoder blocks.
        num_attention_heads: Number of query heads; must divide `hidden_size`.
        num_key_value_heads: Number of key/value heads, shared by groups of query heads (grouped-query
            attention); must divide `num_attention_heads`. `None` (kept as such, so that it follows a later
            change of `num_attention_heads`) means as many as query heads: plain multi-head attention.
        max_position_embeddings: Longest sequence the model is meant for: the size of the learned position
            table with absolute positions; with rotary positions only a recorded limit, as in Llama.
        position_embedding_type: `"absolute"`: a learned position table added to the token embeddings
            (GPT-2); `"rotary"`: rotary embeddings of the queries and keys (RoFormer, Llama), in Llama's
            rotate-half layout. The names are those of transformers' ESM/BERT-family configs.
        rope_theta: Base of the rotary frequencies (Llama: 10000); used with rotary positions only.
        norm_type: `"layernorm"` (GPT-2) or `"rmsnorm"` (Llama; no mean subtraction, never a bias).
        layer_norm_eps: Epsilon of the LayerNorms.
        rms_norm_eps: Epsilon of the RMSNorms. Kept apart from `layer_norm_eps`, as transformers keeps it
            (`GPT2Config.layer_norm_epsilon` vs `LlamaConfig.rms_norm_eps`), so each exports as it is.
        qk_norm: Whether each head's queries and keys are normalised (a `norm_type` norm over the head dimension,
            one learned scale shared by the heads) before attention, and before their rotation with rotary
            positions: QK-norm, which keeps the attention logits from growing (Qwen 3's per-head placement;
            OLMo 2 normalises the whole projection, modded-nanogpt per head without a scale).
        mlp_type: `"standard"`: `proj(act(fc(x)))` (GPT-2); `"gated"`: `proj(act(gate(x)) * up(x))`, with
            `hidden_act="silu"` the SwiGLU of Llama. `hidden_act` names the activation in both, as in every
            transformers config.
        hidden_act: MLP activation, a key of `transformers.activations.ACT2FN` (GPT-2 uses `"gelu_new"`,
            Llama `"silu"`; `"relu2"` is Primer's squared ReLU, which modded-nanogpt uses).
        dropout: Dropout probability on the embeddings, the attention probabilities and both residual
            branches.
        bias: Whether the linear layers and LayerNorms have a bias (GPT-2: `True`, Llama: `False`).
        initializer_range: Standard deviation of the normal weight init; the residual output projections
            use `initializer_range / sqrt(2 * num_hidden_layers)`.
        zero_init_output_projections: Whether the attention and MLP output projections (the two that write into
            the residual stream) start at zero, so that every block starts as the identity (modded-nanogpt).
        tie_word_embeddings: Whether the LM head shares its weight with the token embedding.
        logit_softcap: With a cap `c > 0`, the logits are `c * tanh(logits / c)`, in training and generation:
            smoothly bounded by `c` (Gemma 2's final soft-capping: 30). 0: off.
        document_masking: Whether a forward over a packed block (`use_cache=False` and neither an attention mask
            nor position ids: how hfgpt trains and evaluates) keeps its documents apart: positions restart after
            each `eos_token_id`, and a token attends only to its own document. Generation, which passes a mask
            and positions, is unchanged.
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
        num_key_value_heads: int | None = None,
        max_position_embeddings: int = 128,
        position_embedding_type: str = "absolute",
        rope_theta: float = 10000.0,
        norm_type: str = "layernorm",
        layer_norm_eps: float = 1e-5,
        rms_norm_eps: float = 1e-6,
        qk_norm: bool = False,
        mlp_type: str = "standard",
        hidden_act: str = "gelu",
        dropout: float = 0.0,
        bias: bool = False,
        initializer_range: float = 0.02,
        zero_init_output_projections: bool = False,
        tie_word_embeddings: bool = True,
        logit_softcap: float = 0.0,
        document_masking: bool = False,
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
        self.num_key_value_heads = num_key_value_heads
        self.max_position_embeddings = max_position_embeddings
        self.position_embedding_type = position_embedding_type
        self.rope_theta = rope_theta
        self.norm_type = norm_type
        self.layer_norm_eps = layer_norm_eps
        self.rms_norm_eps = rms_norm_eps
        self.qk_norm = qk_norm
        self.mlp_type = mlp_type
        self.hidden_act = hidden_act
        self.dropout = dropout
        self.bias = bias
        self.initializer_range = initializer_range
        self.zero_init_output_projections = zero_init_output_projections
        # The v5 base config no longer declares these; without `tie_word_embeddings` nothing is tied.
        self.tie_word_embeddings = tie_word_embeddings
        self.logit_softcap = logit_softcap
        self.document_masking = document_masking
        self.use_cache = use_cache
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        super().__init__(**kwargs)

    @property
    def key_value_heads(self) -> int:
        """The number of key/value heads the model has: `num_key_value_heads`, or one per query head."""
        return self.num_key_value_heads or self.num_attention_heads


__all__ = ["HfGptConfig"]
