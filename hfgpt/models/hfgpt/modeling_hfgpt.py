"""The hfgpt model: a decoder-only transformer in the transformers class layout, GPT-2 or Llama by option.

Token embeddings, pre-norm blocks (norm -> causal self-attention -> residual, norm -> MLP -> residual), a
final norm and an LM head, tied to the token embedding by default. The defaults build GPT-2's block: learned
absolute positions, LayerNorm, a GELU MLP; with `bias=True, hidden_act="gelu_new", dropout=0` it computes
exactly what GPT-2 computes (GPT-2's Conv1D weights are the weights of these Linear layers, transposed).
The options of `HfGptConfig` build Llama's block instead: rotary positions in Llama's rotate-half layout,
RMSNorm, a gated MLP and grouped-query attention; such a model computes exactly what `LlamaForCausalLM`
computes with the same weights, the fused projections split. The recipe options of today's speed records
(QK-norm, squared ReLU, logit soft-capping, zero-initialised output projections) and document masking of packed
training blocks are off by default; GPT-2 and Llama have neither QK-norm nor soft-capping.

This file imports only torch, transformers and its own configuration (through a single-dot relative
import), so a saved model folder also loads with `trust_remote_code=True` where hfgpt is not installed.

References: Radford et al. 2019, "Language Models are Unsupervised Multitask Learners" (GPT-2); Su et al.
2021, "RoFormer" (rotary positions); Zhang & Sennrich 2019 (RMSNorm); Shazeer 2020, "GLU Variants Improve
Transformer" (SwiGLU); Ainslie et al. 2023 (grouped-query attention); Dehghani et al. 2023 and OLMo 2 (QK-norm);
So et al. 2021, "Primer" (squared ReLU); Gemma Team 2024, "Gemma 2" (logit soft-capping); Keller Jordan's
modded-nanogpt speedrun records (zero-initialised projections, and all of these together); transformers' llama
and gpt2 modeling files for the class ladder and the attention/cache/mask APIs.
"""

import inspect
import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_hfgpt import MLP_TYPES, NORM_TYPES, POSITION_EMBEDDING_TYPES, HfGptConfig

# transformers 5.24 renamed the KV cache from `past_key_values` to `cache`: in `forward`, in `create_causal_mask`
# and in the output classes, and its generate() passes `cache=`. This file speaks the installed release's name,
# so that a saved folder's copy works under the releases before and after the rename.
CACHE_NAME = "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"


def _one_cache(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    """The cache a caller passed under either name (generate() uses the installed release's)."""
    if cache is not None and past_key_values is not None:
        raise ValueError("Pass the KV cache as `cache` or as `past_key_values`, not both")
    return cache if cache is not None else past_key_values


def _old_cache_name_warns(forward: Callable) -> Callable:
    """On releases that name the cache `cache`, a caller's `past_key_values` warns as in stock models' forward
    (their own decorator, same release of removal); before the rename it is the current name and stays silent."""
    if CACHE_NAME == "past_key_values":
        return forward
    return deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")(forward)


def check_architecture(config: HfGptConfig) -> None:
    """Refuse, before any weight is made, a configuration the model cannot be built from."""
    choices = {"position_embedding_type": POSITION_EMBEDDING_TYPES, "norm_type": NORM_TYPES, "mlp_type": MLP_TYPES}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {getattr(config, name)!r}")
    if config.hidden_size % config.num_attention_heads != 0:
        raise ValueError(f"hidden_size ({config.hidden_size}) must be divisible by num_attention_heads "
                         f"({config.num_attention_heads})")
    if config.num_attention_heads % config.key_value_heads != 0:
        raise ValueError(f"num_attention_heads ({config.num_attention_heads}) must be divisible by "
                         f"num_key_value_heads ({config.key_value_heads})")
    if config.position_embedding_type == "rotary" and (config.hidden_size // config.num_attention_heads) % 2:
        raise ValueError("rotary positions rotate pairs of dimensions: hidden_size / num_attention_heads "
                         f"({config.hidden_size // config.num_attention_heads}) must be even")
    if config.logit_softcap < 0:
        raise ValueError(f"logit_softcap must be 0 (off) or positive, not {config.logit_softcap}")
    if config.document_masking and config.eos_token_id is None:
        raise ValueError("document_masking needs eos_token_id, the token that ends each packed document")


def document_position_ids(input_ids: torch.LongTensor, eos_token_id: int) -> torch.LongTensor:
    """(B, T) positions that restart at 0 after each `eos_token_id`, which ends its own document: each document of
    a packed block counts from 0, and `create_causal_mask` reads the restarts as document boundaries."""
    index = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)  # (B, T)
    after_eos = torch.zeros_like(input_ids, dtype=torch.bool)
    after_eos[:, 1:] = input_ids[:, :-1] == eos_token_id  # the tokens that start a document
    document_start = torch.where(after_eos, index, 0).cummax(dim=1).values  # (B, T): where each token's begins
    return index - document_start


class HfGptRMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale and no bias, computed in fp32 (as Llama's, to the bit)."""

    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


def make_norm(config: HfGptConfig, size: int | None = None) -> nn.Module:
    """The norm `config.norm_type` asks for, over `size` features: the block and final norms over hidden_size,
    QK-norm over one head."""
    size = size or config.hidden_size
    if config.norm_type == "rmsnorm":
        return HfGptRMSNorm(size, eps=config.rms_norm_eps)
    return nn.LayerNorm(size, eps=config.layer_norm_eps, bias=config.bias)


class HfGptRotaryEmbedding(nn.Module):
    """The cos and sin tables of rotary positions for given position ids, one frequency per pair of dims."""

    def __init__(self, config: HfGptConfig) -> None:
        super().__init__()
        # Not saved: from_pretrained builds the model on the meta device, so _init_weights makes it anew.
        self.register_buffer("inv_freq", self.compute_inv_freq(config), persistent=False)

    @staticmethod
    def compute_inv_freq(config: HfGptConfig) -> torch.Tensor:
        head_dim = config.hidden_size // config.num_attention_heads
        return 1.0 / (config.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))

    def forward(self, x: torch.Tensor, position_ids: torch.LongTensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device)  # (B, T, hs/2), in fp32
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, hs): rotate-half layout, see rotate_half
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Pairs dimension i with i + hs/2 (Llama's layout in transformers), not 2i with 2i+1 (Meta's original):
    so that a Llama export is a plain copy of the query and key weights."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(query: torch.Tensor, key: torch.Tensor, cos: torch.Tensor,
                         sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate queries (B, nh, T, hs) and keys (B, nkv, T, hs) by their positions' angles."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, hs): the same angle for every head
    return query * cos + rotate_half(query) * sin, key * cos + rotate_half(key) * sin


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, nkv, S, hs) -> (B, nkv * n_rep, S, hs): each key/value head serves n_rep query heads in a row."""
    if n_rep == 1:
        return hidden_states
    batch, num_key_value_heads, length, head_dim = hidden_states.shape
    hidden_states = hidden_states[:, :, None].expand(batch, num_key_value_heads, n_rep, length, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, length, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention spelled out: returns the output (B, T, nh, hs) and the weights (B, nh, T, S)."""
    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, nh, T, S), S = past + T
    if attention_mask is not None:
        # create_causal_mask gives eager an additive mask: 0 where allowed, dtype-min where masked
        attn_weights = attn_weights + attention_mask
    # softmax in fp32 so that half-precision scores cannot overflow
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)  # (B, nh, T, hs)
    return attn_output.transpose(1, 2).contiguous(), attn_weights


class HfGptAttention(nn.Module):
    """Causal self-attention with a fused query/key/value projection; queries, then keys, then values.

    With fewer key/value heads than query heads (grouped-query attention) the fused projection is narrower
    than 3 * hidden_size, and the KV cache smaller by the same factor.
    """

    def __init__(self, config: HfGptConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx  # the KV cache slot this layer reads and writes
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.num_key_value_groups = config.num_attention_heads // config.key_value_heads  # read by sdpa too
        self.split_sizes = [config.hidden_size, *2 * [config.key_value_heads * self.head_dim]]
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.dropout
        self.is_causal = True  # read by the sdpa and flash attention functions
        self.c_attn = nn.Linear(config.hidden_size, sum(self.split_sizes), bias=config.bias)
        # QK-norm: each head's queries and keys normalised (one scale shared by the heads), before rotary as in
        # OLMo 2, Qwen 3 and modded-nanogpt, so the attention logits cannot grow with the weights
        self.q_norm = make_norm(config, self.head_dim) if config.qk_norm else None
        self.k_norm = make_norm(config, self.head_dim) if config.qk_norm else None
        self.c_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)
        self.c_proj.is_residual_projection = True  # scaled init, see HfGptPreTrainedModel._init_weights
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        cache: Cache | None = kwargs.pop(CACHE_NAME, None)
        batch_size, seq_len, _ = hidden_states.shape
        head_shape = (batch_size, seq_len, -1, self.head_dim)
        query, key, value = self.c_attn(hidden_states).split(self.split_sizes, dim=-1)  # (B, T, C), 2 x (B, T, Ckv)
        query = query.view(head_shape).transpose(1, 2)  # (B, nh, T, hs)
        key = key.view(head_shape).transpose(1, 2)  # (B, nkv, T, hs)
        value = value.view(head_shape).transpose(1, 2)
        if self.q_norm is not None:
            query, key = self.q_norm(query), self.k_norm(key)  # over hs, per head and position
        if position_embeddings is not None:
            query, key = apply_rotary_pos_emb(query, key, *position_embeddings)  # the cache keeps rotated keys

        if cache is not None:
            # append this step's keys/values and get the whole history back: (B, nkv, S, hs)
            key, value = cache.update(key, value, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(batch_size, seq_len, -1)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(attn_output)), attn_weights


class HfGptMLP(nn.Module):
    """Position-wise feed-forward block: expand, activate, project back.

    Gated (`mlp_type="gated"`), `c_fc` makes both branches in one matmul, the activated gate first and the
    linear "up" branch second, as Phi-3's `gate_up_proj`: proj(act(gate) * up), SwiGLU with `silu`.
    """

    def __init__(self, config: HfGptConfig) -> None:
        super().__init__()
        self.gated = config.mlp_type == "gated"
        branches = 2 if self.gated else 1
        self.c_fc = nn.Linear(config.hidden_size, branches * config.intermediate_size, bias=config.bias)
        self.act = ACT2FN[config.hidden_act]
        self.c_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.bias)
        self.c_proj.is_residual_projection = True  # scaled init, see HfGptPreTrainedModel._init_weights
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.c_fc(hidden_states)  # (B, T, I), gated: (B, T, 2I)
        if self.gated:
            gate, up = hidden_states.chunk(2, dim=-1)
            hidden_states = self.act(gate) * up
        else:
            hidden_states = self.act(hidden_states)
        return self.dropout(self.c_proj(hidden_states))


class HfGptDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: HfGptConfig, layer_idx: int) -> None:
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = HfGptAttention(config, layer_idx)
        self.ln_2 = make_norm(config)
        self.mlp = HfGptMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # hidden_states comes positionally and the cache by keyword, under the installed release's name:
        # GradientCheckpointingLayer checkpoints the positional inputs and drops the cache while it recomputes.
        attn_output, attn_weights = self.attn(self.ln_1(hidden_states), attention_mask=attention_mask, **kwargs)
        hidden_states = hidden_states + attn_output
        hidden_states = hidden_states + self.mlp(self.ln_2(hidden_states))
        return hidden_states, attn_weights


class HfGptPreTrainedModel(PreTrainedModel):
    """Shared class settings and weight init, which also rebuilds the rotary table after loading."""

    config_class = HfGptConfig
    config: HfGptConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["HfGptDecoderLayer"]
    _skip_keys_device_placement: ClassVar[list[str]] = [CACHE_NAME]
    _supports_sdpa = True
    _supports_flash_attn = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # `init.*` (not `nn.init.*`) skips tensors that from_pretrained has already loaded.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            residual = getattr(module, "is_residual_projection", False)
            if residual and self.config.zero_init_output_projections:
                init.zeros_(module.weight)  # modded-nanogpt: every block starts as the identity
            else:
                # GPT-2: each block adds two branches to the residual stream; scaling their output
                # projections by 1/sqrt(2L) keeps the stream's variance from growing with depth.
                scale = math.sqrt(2 * self.config.num_hidden_layers) if residual else 1.0
                init.normal_(module.weight, mean=0.0, std=std / scale)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, (nn.LayerNorm, HfGptRMSNorm)):
            init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, HfGptRotaryEmbedding):
            init.copy_(module.inv_freq, module.compute_inv_freq(self.config))


class HfGptModel(HfGptPreTrainedModel):
    """The decoder without a head: returns the final-norm hidden states (B, T, C).

    Positions enter either once, as a learned table added to the token embeddings (`wpe`), or in every
    attention layer, as rotations of the queries and keys (`rotary_emb`); a model has one of the two.
    """

    def __init__(self, config: HfGptConfig) -> None:
        super().__init__(config)
        check_architecture(config)
        rotary = config.position_embedding_type == "rotary"
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.wpe = None if rotary else nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.rotary_emb = HfGptRotaryEmbedding(config) if rotary else None
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(HfGptDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.ln_f = make_norm(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.wte = value

    @_old_cache_name_warns
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        r"""`cache` (also accepted as `past_key_values`, its name before transformers 5.24) holds the keys and
        values of earlier positions; `cache_position`, which older callers pass, gives the new positions."""
        cache = _one_cache(cache, past_key_values)
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.wte(input_ids)  # (B, T, C)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        if position_ids is None and self.config.document_masking and cache is None and attention_mask is None \
                and input_ids is not None:
            # a packed block (training, evaluation): each document counts its positions from 0, and
            # create_causal_mask turns the restarts into a block-diagonal causal mask (generation passes positions)
            position_ids = document_position_ids(input_ids, self.config.eos_token_id)  # (B, T)
        if position_ids is None:
            # generate() passes position_ids (from the padding mask); otherwise continue after the cache
            if cache_position is None:
                past_seen = cache.get_seq_length() if cache is not None else 0
                cache_position = torch.arange(
                    past_seen, past_seen + inputs_embeds.shape[1], device=inputs_embeds.device
                )
            position_ids = cache_position.unsqueeze(0)  # (1, T), broadcast over the batch

        # (B, 1, T, S) mask in the form the attention implementation wants, or None where sdpa can rely on is_causal
        # alone; without a cache and a padding mask, positions that restart mark packed documents, kept apart
        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **{CACHE_NAME: cache},
        )

        hidden_states = inputs_embeds if self.wpe is None else inputs_embeds + self.wpe(position_ids)  # (B, T, C)
        if self.rotary_emb is not None:
            kwargs["position_embeddings"] = self.rotary_emb(hidden_states, position_ids)  # 2 x (B|1, T, hs)
        hidden_states = self.drop(hidden_states)
        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, attn_weights = layer(
                hidden_states,
                attention_mask=causal_mask,
                output_attentions=output_attentions,
                **{CACHE_NAME: cache},
                **kwargs,
            )
            # like transformers: only eager returns weights (sdpa and flash warn), so the tuple stays empty
            if output_attentions and attn_weights is not None:
                all_attentions += (attn_weights,)
        hidden_states = self.ln_f(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        output = BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            **{CACHE_NAME: cache if use_cache else None},
        )
        return output if return_dict else output.to_tuple()


class HfGptForCausalLM(HfGptPreTrainedModel, GenerationMixin):
    """HfGptModel with a linear language-modeling head on top."""

    # v5 wants a dict {tied parameter: source}; tying happens only if config.tie_word_embeddings
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.wte.weight"}

    def __init__(self, config: HfGptConfig) -> None:
        super().__init__(config)
        self.model = HfGptModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.wte = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    @_old_cache_name_warns
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        r"""`labels` (B, T) are the input ids themselves (the shift happens inside); -100 is ignored.
        `logits_to_keep`: an int N computes logits for the last N positions only (0: all), a 1D tensor
        for those positions. `cache` may also be given as `past_key_values`, its name before transformers 5.24.
        `cache_position` is accepted through `kwargs`; it is deliberately not in this signature, because
        generate() warns about remote-code models whose forward names it.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=_one_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **kwargs,
        )
        # generate() asks for the last position only: no need to project the whole sequence
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(outputs.last_hidden_state[:, keep, :])  # (B, T_keep, V)
        if self.config.logit_softcap:  # Gemma 2: smoothly within (-cap, cap), in training and generation alike
            logits = self.config.logit_softcap * torch.tanh(logits / self.config.logit_softcap)

        loss = None
        if labels is not None:
            # transformers' ForCausalLM loss: shifts labels, upcasts logits to fp32, ignores -100, and
            # honours the Trainer's num_items_in_batch (from kwargs) for gradient accumulation
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)

        output = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **{CACHE_NAME: getattr(outputs, CACHE_NAME)},
        )
        return output if return_dict else output.to_tuple()


__all__ = ["HfGptForCausalLM", "HfGptModel", "HfGptPreTrainedModel"]
