"""Tiny-config CPU tests of hfgpt/modeling_hfgpt.py over a grid of its architecture options, including
weight-for-weight matches against GPT-2 and Llama."""

from __future__ import annotations

import json
import math
import time
import warnings

import pytest
import torch
import transformers
from helpers import REPO, assert_greedy_up_to_rounding
from no_hfgpt import MODEL_CHILD, run_without_hfgpt
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

import hfgpt  # noqa: F401  (registers model_type "hfgpt" with the Auto classes)
from hfgpt.models.hfgpt import HfGptConfig
from hfgpt.models.hfgpt.modeling_hfgpt import CACHE_NAME, HfGptForCausalLM, HfGptModel, document_position_ids
from hfgpt.training.setup import enable_activation_checkpointing

VOCAB, HIDDEN, LAYERS, HEADS, MAX_POS = 97, 32, 2, 4, 64
PAD = 0
FIXTURES = REPO / "tests" / "fixtures"

# The option grid every behaviour test runs over: GPT-2's block, Llama's block, two mixtures that no stock
# architecture has (rotary positions alone, with biases and one key/value head; a gated MLP with grouped-query
# attention on learned positions), and the speed records' options (QK-norm, squared ReLU, a soft cap low enough
# to bend these small logits).
ARCHITECTURES = {
    "gpt2": dict(bias=True, hidden_act="gelu_new"),
    "llama": dict(position_embedding_type="rotary", norm_type="rmsnorm", mlp_type="gated", hidden_act="silu",
                  num_key_value_heads=2),
    "rotary-mqa-bias": dict(position_embedding_type="rotary", bias=True, num_key_value_heads=1),
    "gated-gqa": dict(mlp_type="gated", hidden_act="silu", num_key_value_heads=2),
    "speedrun": dict(position_embedding_type="rotary", norm_type="rmsnorm", qk_norm=True, hidden_act="relu2",
                     logit_softcap=0.5, num_key_value_heads=2),
}


@pytest.fixture(params=list(ARCHITECTURES))
def arch(request) -> dict:
    """The config fields of one architecture of the grid."""
    return ARCHITECTURES[request.param]


def tiny_config(**overrides) -> HfGptConfig:
    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, max_position_embeddings=MAX_POS, pad_token_id=PAD)
    return HfGptConfig(**{**fields, **overrides})


def tiny_model(attn_implementation: str = "sdpa", seed: int = 0, **overrides) -> HfGptForCausalLM:
    torch.manual_seed(seed)
    model = HfGptForCausalLM(tiny_config(**overrides))
    model.set_attn_implementation(attn_implementation)
    return model.eval()


def random_ids(batch: int = 2, length: int = 10, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, length), generator=generator)  # 1..: never the pad id


def greedy(model: HfGptForCausalLM, input_ids: torch.Tensor, **kwargs) -> torch.Tensor:
    return model.generate(input_ids, **{"max_new_tokens": 8, "do_sample": False, "pad_token_id": PAD, **kwargs})


def test_default_attention_is_sdpa():
    assert HfGptForCausalLM(tiny_config()).config._attn_implementation == "sdpa"


def test_forward_shapes_and_shifted_loss(arch):
    model = tiny_model(**arch)
    input_ids = random_ids()
    labels = input_ids.clone()
    labels[0, 3:6] = -100
    out = model(input_ids, labels=labels)
    assert out.logits.shape == (2, 10, VOCAB)
    assert out.past_key_values.get_seq_length() == 10

    # position t predicts token t+1; the -100 positions do not count at all
    logits, targets = out.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1)
    keep = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[keep].float(), targets[keep])
    torch.testing.assert_close(out.loss, expected)


def test_inputs_embeds_equal_input_ids_and_both_is_an_error():
    model = tiny_model()
    input_ids = random_ids()
    from_ids = model(input_ids).logits
    from_embeds = model(inputs_embeds=model.get_input_embeddings()(input_ids)).logits
    torch.testing.assert_close(from_ids, from_embeds)
    with pytest.raises(ValueError, match="exactly one"):
        model(input_ids, inputs_embeds=model.get_input_embeddings()(input_ids))


def test_return_dict_false_gives_a_tuple():
    model = tiny_model()
    input_ids = random_ids()
    loss, logits, *_ = model(input_ids, labels=input_ids, return_dict=False)
    torch.testing.assert_close(logits, model(input_ids).logits)
    assert loss.ndim == 0


def test_logits_to_keep():
    model = tiny_model()
    input_ids = random_ids()
    full = model(input_ids).logits
    torch.testing.assert_close(model(input_ids, logits_to_keep=1).logits, full[:, -1:])
    torch.testing.assert_close(model(input_ids, logits_to_keep=3).logits, full[:, -3:])
    assert model(input_ids, logits_to_keep=0).logits.shape == full.shape


def test_incremental_decoding_matches_full_forward(arch):
    # also covers explicit cache_position, which older callers still pass
    model = tiny_model(**arch)
    input_ids = random_ids()
    full = model(input_ids).logits
    prefix = model(input_ids[:, :7], use_cache=True)
    step = model(input_ids[:, 7:], **{CACHE_NAME: prefix.past_key_values}, cache_position=torch.arange(7, 10))
    torch.testing.assert_close(step.logits, full[:, 7:], atol=1e-5, rtol=1e-5)


def cache_name_warnings(model, input_ids: torch.Tensor, name: str) -> list[str]:
    """The deprecation warnings of a forward over the last 3 positions given the cache of the first 7 under
    `name`, with the model's class name blanked out."""
    prefix = model(input_ids[:, :7], use_cache=True).past_key_values
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(input_ids[:, 7:], **{name: prefix})
    return [f"{w.category.__name__}: {w.message}".replace(type(model).__name__, "MODEL") for w in caught
            if "deprecated" in str(w.message)]


@pytest.mark.parametrize("name", ["past_key_values", "cache"])
def test_the_cache_under_either_name_warns_exactly_as_a_stock_model(name):
    # transformers 5.25's common model test expects "`past_key_values` is deprecated" from a forward given
    # the old name on a release that names it `cache`; on releases before the rename the old name is current.
    if name == "cache" and CACHE_NAME != "cache":
        pytest.skip(f"transformers {transformers.__version__} has no `cache` argument yet")
    llama, model = llama_pair(tie_word_embeddings=True)
    ours, stock = (cache_name_warnings(m, random_ids(), name) for m in (model, llama))
    assert ours == stock
    assert len(ours) == (name == "past_key_values" and CACHE_NAME == "cache")


def test_generate_gives_no_cache_deprecation_warning():
    model = tiny_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        greedy(model, random_ids(), max_new_tokens=5)
    assert not [w for w in caught if "deprecated" in str(w.message)]


def left_padded(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of different lengths as one batch padded on the left, and its attention mask."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), PAD)
    attention_mask = torch.zeros_like(input_ids)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row):] = row
        attention_mask[i, width - len(row):] = 1
    return input_ids, attention_mask


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_200_greedy_tokens_with_cache_equal_those_without(attn_implementation, arch):
    # transformers 5.24's generate() passes the cache as `cache=`: a forward that only knew `past_key_values`
    # silently ran without it and drifted from the uncached tokens.
    model = tiny_model(attn_implementation, max_position_embeddings=256, **arch)
    input_ids, attention_mask = left_padded([random_ids(1, 9, seed=2)[0], random_ids(1, 4, seed=3)[0]])
    options = {"attention_mask": attention_mask, "max_new_tokens": 200, "min_new_tokens": 200}
    with_cache = greedy(model, input_ids, **options)
    without_cache = greedy(model, input_ids, use_cache=False, **options)
    assert with_cache.shape == (2, 9 + 200)
    assert torch.equal(with_cache, without_cache)


def forward_lengths(model: HfGptForCausalLM, **generate_options) -> list[int]:
    """The number of positions each forward pass of the decoder computed during one greedy generation."""
    lengths: list[int] = []
    hook = model.model.register_forward_pre_hook(lambda _, args, kwargs: lengths.append(
        kwargs["input_ids"].shape[1]), with_kwargs=True)
    try:
        greedy(model, random_ids(1, 8), **generate_options)
    finally:
        hook.remove()
    return lengths


def test_generation_reuses_the_cache_and_is_at_least_twice_as_fast():
    model = tiny_model(hidden_size=256, num_hidden_layers=4, max_position_embeddings=256)
    options = {"max_new_tokens": 200, "min_new_tokens": 200}
    # with the cache only the prompt is computed in full, then one new position per token
    assert forward_lengths(model, **options) == [8] + [1] * 199
    assert forward_lengths(model, use_cache=False, **options) == list(range(8, 208))

    seconds: dict[bool, float] = {True: math.inf, False: math.inf}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time of one thread: neither other processes nor idle threads' spinning count
    try:
        for _ in range(3):  # interleaved, best of three
            for use_cache in seconds:
                start = time.process_time()
                greedy(model, random_ids(1, 8), use_cache=use_cache, **options)
                seconds[use_cache] = min(seconds[use_cache], time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    assert seconds[False] >= 2 * seconds[True], seconds


def test_sdpa_and_eager_agree(arch):
    input_ids = random_ids()
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :3] = 0
    for mask in (None, attention_mask):
        sdpa = tiny_model("sdpa", **arch)(input_ids, attention_mask=mask).logits
        eager = tiny_model("eager", **arch)(input_ids, attention_mask=mask).logits
        # padded query positions attend to nothing: their outputs are meaningless and may differ
        real = torch.ones_like(input_ids, dtype=torch.bool) if mask is None else mask.bool()
        torch.testing.assert_close(sdpa[real], eager[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_left_padded_batch_generation_equals_unpadded_rows(attn_implementation, arch):
    model = tiny_model(attn_implementation, **arch)
    rows = [random_ids(1, 7, seed=2)[0], random_ids(1, 4, seed=3)[0]]
    input_ids, attention_mask = left_padded(rows)
    batched = greedy(model, input_ids, attention_mask=attention_mask)
    for i, row in enumerate(rows):
        alone = greedy(model, row[None])
        assert torch.equal(batched[i, input_ids.shape[1]:], alone[0, len(row):]), f"row {i} differs"


def test_hidden_states_and_attentions(arch):
    model = tiny_model("eager", **arch)
    input_ids = random_ids()
    out = model(input_ids, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == LAYERS + 1
    assert all(h.shape == (2, 10, HIDDEN) for h in out.hidden_states)
    torch.testing.assert_close(out.hidden_states[-1], model.model(input_ids).last_hidden_state)
    assert len(out.attentions) == LAYERS
    for weights in out.attentions:
        assert weights.shape == (2, HEADS, 10, 10)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, HEADS, 10))
        assert torch.all(weights.triu(diagonal=1) == 0)  # causal


def test_save_load_round_trip_keeps_weights_tied(tmp_path, arch):
    model = tiny_model(**arch)
    assert model.lm_head.weight.data_ptr() == model.model.wte.weight.data_ptr()
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", framework="pt") as saved:
        keys = set(saved.keys())
    assert "model.wte.weight" in keys and "lm_head.weight" not in keys

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, HfGptForCausalLM)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.wte.weight.data_ptr()
    input_ids = random_ids()
    torch.testing.assert_close(loaded(input_ids).logits, model(input_ids).logits)


def test_untied_config_unties(tmp_path, arch):
    model = tiny_model(tie_word_embeddings=False, **arch)
    assert model.lm_head.weight.data_ptr() != model.model.wte.weight.data_ptr()
    assert not torch.equal(model.lm_head.weight, model.model.wte.weight)
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", framework="pt") as saved:
        assert "lm_head.weight" in set(saved.keys())
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.lm_head.weight.data_ptr() != loaded.model.wte.weight.data_ptr()
    torch.testing.assert_close(loaded.lm_head.weight, model.lm_head.weight)


def test_scaled_residual_init():
    torch.manual_seed(0)
    config = HfGptConfig(hidden_size=256, num_hidden_layers=8, num_attention_heads=4, initializer_range=0.02)
    model = HfGptModel(config)
    scaled = 0.02 / math.sqrt(2 * 8)
    for layer in model.layers:
        assert layer.attn.c_proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
        assert layer.mlp.c_proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
        assert layer.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert layer.mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(model.ln_f.weight, torch.ones(256))


def gradients(arch: dict, checkpointing: bool, use_reentrant: bool) -> tuple[dict[str, torch.Tensor], int]:
    """Parameter gradients of one training step, and how often the first block's ln_1 ran."""
    model = tiny_model(**arch).train()
    if checkpointing:
        enable_activation_checkpointing(model, use_reentrant=use_reentrant)
    calls = []
    model.model.layers[0].ln_1.register_forward_hook(lambda *_: calls.append(1))
    input_ids = random_ids()
    model(input_ids, labels=input_ids, use_cache=False).loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}, len(calls)


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_gradient_checkpointing_gives_equal_gradients(use_reentrant, arch):
    plain, plain_calls = gradients(arch, checkpointing=False, use_reentrant=use_reentrant)
    checkpointed, checkpointed_calls = gradients(arch, checkpointing=True, use_reentrant=use_reentrant)
    assert (plain_calls, checkpointed_calls) == (1, 2)  # the backward pass recomputed the block
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], msg=name)


def test_resize_token_embeddings(arch):
    model = tiny_model(**arch)
    model.resize_token_embeddings(VOCAB + 11)
    assert model.config.vocab_size == VOCAB + 11
    assert model.model.wte.weight.shape == (VOCAB + 11, HIDDEN)
    assert model.lm_head.weight.data_ptr() == model.model.wte.weight.data_ptr()
    input_ids = torch.tensor([[1, 5, VOCAB + 10]])
    out = model(input_ids, labels=input_ids)
    assert out.logits.shape == (1, 3, VOCAB + 11)
    assert torch.isfinite(out.loss)


def test_auto_classes_resolve_hfgpt():
    config = AutoConfig.for_model("hfgpt", vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                  num_attention_heads=HEADS)
    assert isinstance(config, HfGptConfig)
    assert isinstance(AutoModelForCausalLM.from_config(config), HfGptForCausalLM)


def gpt2_pair() -> tuple[GPT2LMHeadModel, HfGptForCausalLM]:
    """A random GPT-2 and an HfGpt carrying the very same weights."""
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=MAX_POS, n_embd=HIDDEN, n_layer=LAYERS,
                                      n_head=HEADS, activation_function="gelu_new", resid_pdrop=0.0,
                                      embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2))
    model = HfGptForCausalLM(tiny_config(bias=True, hidden_act="gelu_new", tie_word_embeddings=True))
    state = {}
    for name, tensor in gpt2.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to wte in both models
        ours = name.replace("transformer.", "model.").replace("model.h.", "model.layers.")
        conv1d = name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))
        state[ours] = tensor.t() if conv1d else tensor  # Conv1D stores (in, out), Linear (out, in)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["lm_head.weight"] and unexpected == []
    return gpt2.eval(), model.eval()


@pytest.mark.machine_sensitive
def test_reference_match_gpt2():
    gpt2, model = gpt2_pair()
    assert model.lm_head.weight.data_ptr() == model.model.wte.weight.data_ptr()
    input_ids = random_ids(length=12)
    expected = gpt2(input_ids, labels=input_ids)
    actual = model(input_ids, labels=input_ids)
    torch.testing.assert_close(actual.logits, expected.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(actual.loss, expected.loss, atol=1e-5, rtol=1e-5)

    generated = model.generate(input_ids, max_new_tokens=8, do_sample=False, pad_token_id=PAD)
    reference = gpt2.generate(input_ids, max_new_tokens=8, do_sample=False, pad_token_id=PAD)
    assert torch.equal(generated, reference)


def llama_pair(tie_word_embeddings: bool) -> tuple[LlamaForCausalLM, HfGptForCausalLM]:
    """A random Llama (grouped-query attention, SwiGLU) and an HfGpt carrying the very same weights."""
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=48, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=2, max_position_embeddings=MAX_POS, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0}, tie_word_embeddings=tie_word_embeddings,
        bos_token_id=1, eos_token_id=2))
    model = HfGptForCausalLM(tiny_config(**ARCHITECTURES["llama"], intermediate_size=48, rope_theta=500.0,
                                         tie_word_embeddings=tie_word_embeddings))
    theirs = llama.state_dict()
    state = {"model.wte.weight": theirs["model.embed_tokens.weight"], "model.ln_f.weight": theirs["model.norm.weight"]}
    if not tie_word_embeddings:
        state["lm_head.weight"] = theirs["lm_head.weight"]
    for i in range(LAYERS):
        layer = f"model.layers.{i}."
        state[layer + "ln_1.weight"] = theirs[layer + "input_layernorm.weight"]
        state[layer + "ln_2.weight"] = theirs[layer + "post_attention_layernorm.weight"]
        state[layer + "attn.c_attn.weight"] = torch.cat([theirs[f"{layer}self_attn.{name}_proj.weight"]
                                                         for name in ("q", "k", "v")])
        state[layer + "attn.c_proj.weight"] = theirs[layer + "self_attn.o_proj.weight"]
        state[layer + "mlp.c_fc.weight"] = torch.cat([theirs[layer + "mlp.gate_proj.weight"],
                                                      theirs[layer + "mlp.up_proj.weight"]])
        state[layer + "mlp.c_proj.weight"] = theirs[layer + "mlp.down_proj.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == (["lm_head.weight"] if tie_word_embeddings else []) and unexpected == []
    return llama.eval(), model.eval()


@pytest.mark.machine_sensitive
@pytest.mark.parametrize("tie_word_embeddings", [True, False], ids=["tied", "untied"])
def test_reference_match_llama(tie_word_embeddings):
    llama, model = llama_pair(tie_word_embeddings)
    input_ids = random_ids(length=12)
    expected = llama(input_ids, labels=input_ids)
    actual = model(input_ids, labels=input_ids)
    torch.testing.assert_close(actual.logits, expected.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(actual.loss, expected.loss, atol=1e-5, rtol=1e-5)

    input_ids, attention_mask = left_padded([random_ids(1, 9, seed=2)[0], random_ids(1, 4, seed=3)[0]])
    options = {"attention_mask": attention_mask, "max_new_tokens": 20, "do_sample": False, "pad_token_id": PAD}
    assert torch.equal(model.generate(input_ids, **options), llama.generate(input_ids, **options))


def test_rotary_positions_replace_the_position_table_and_survive_loading(tmp_path):
    model = tiny_model(**ARCHITECTURES["llama"])
    assert model.model.wpe is None and not any("wpe" in name for name, _ in model.named_parameters())
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    # a non-persistent buffer: from_pretrained's meta-device init leaves garbage unless _init_weights rebuilds it
    torch.testing.assert_close(loaded.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq, atol=0, rtol=0)


def test_rotary_attention_depends_only_on_relative_positions():
    # shifting every position by the same offset rotates queries and keys alike: the logits stay the same
    model = tiny_model(**ARCHITECTURES["llama"])
    input_ids = random_ids()
    positions = torch.arange(10)[None]
    torch.testing.assert_close(model(input_ids, position_ids=positions + 17).logits,
                               model(input_ids, position_ids=positions).logits, atol=1e-5, rtol=1e-5)


def test_grouped_query_attention_caches_only_the_key_value_heads():
    model = tiny_model(**ARCHITECTURES["llama"])
    assert model.model.layers[0].attn.c_attn.weight.shape == (HIDDEN + 2 * 2 * (HIDDEN // HEADS), HIDDEN)
    cache = model(random_ids(), use_cache=True).past_key_values
    assert cache.layers[0].keys.shape == (2, 2, 10, HIDDEN // HEADS)  # (B, nkv, T, hs)


def test_key_value_heads_follow_the_query_heads_unless_set():
    config = tiny_config()
    config.num_attention_heads = 8
    assert config.num_key_value_heads is None and config.key_value_heads == 8
    assert tiny_config(num_key_value_heads=2).key_value_heads == 2


SAVED_FOLDERS = sorted(FIXTURES.glob("saved-with-transformers-*"))


@pytest.mark.machine_sensitive
@pytest.mark.parametrize("folder", SAVED_FOLDERS, ids=lambda folder: folder.name)
def test_a_folder_saved_before_the_options_loads_as_the_same_gpt2_model(folder):
    # config.json files written before the architecture options existed have none of their keys
    assert "position_embedding_type" not in json.loads((folder / "config.json").read_text())
    model = HfGptForCausalLM.from_pretrained(folder).eval()
    assert (model.config.position_embedding_type, model.config.norm_type, model.config.mlp_type) == (
        "absolute", "layernorm", "standard")
    expected = json.loads((folder / "expected.json").read_text())
    prompt, new_tokens = torch.tensor(expected["prompt"]), len(expected["generated"][0]) - len(expected["prompt"][0])
    generated = model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                               pad_token_id=0)
    assert generated.shape == (1, len(expected["generated"][0]))
    assert_greedy_up_to_rounding(model, expected["generated"], prompt.shape[1])


@pytest.mark.slow
@pytest.mark.machine_sensitive
def test_every_architecture_loads_with_remote_code_without_hfgpt(tmp_path, arch):
    model = tiny_model(**arch)
    model_dir = tmp_path / "tiny-hfgpt"
    model.save_pretrained(model_dir)
    input_ids = random_ids(length=9)
    model.double()  # as MODEL_CHILD computes
    with torch.no_grad():
        logits = model(input_ids).logits
    generated = model.generate(input_ids, max_new_tokens=6, do_sample=False, pad_token_id=PAD)
    torch.save({"input_ids": input_ids, "logits": logits, "generated": generated}, tmp_path / "expected.pt")
    result = run_without_hfgpt(tmp_path, MODEL_CHILD, str(model_dir), str(tmp_path / "expected.pt"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "REMOTE CODE OK transformers_modules." in result.stdout



# The speed records' options, each held to what it is said to compute.

def same_weights(model: HfGptForCausalLM, **options) -> HfGptForCausalLM:
    """A model built with `options` that holds `model`'s weights (all of them: the options add none)."""
    other = tiny_model(model.config._attn_implementation, **options)
    other.load_state_dict(model.state_dict())
    return other


@pytest.mark.parametrize("norm", [dict(norm_type="rmsnorm", rms_norm_eps=1e-12),
                                  dict(norm_type="layernorm", layer_norm_eps=1e-12)], ids=["rmsnorm", "layernorm"])
def test_qk_norm_makes_attention_blind_to_the_scale_of_queries_and_keys(norm):
    # each head's queries and keys are normalised, so scaling their projection changes nothing; without QK-norm
    # it sharpens every attention pattern
    input_ids = random_ids()
    changes = {}
    for qk_norm in (True, False):
        model = tiny_model(position_embedding_type="rotary", qk_norm=qk_norm, **norm)
        before = model(input_ids).logits
        with torch.no_grad():
            for layer in model.model.layers:
                layer.attn.c_attn.weight[: 2 * HIDDEN] *= 7.0  # the fused projection's query and key rows
        changes[qk_norm] = (model(input_ids).logits - before).abs().max().item()
    assert changes[True] < 1e-5 and changes[False] > 1e-2, changes


def test_qk_norm_normalises_each_head_before_the_rotation():
    model = tiny_model(**{**ARCHITECTURES["speedrun"], "rms_norm_eps": 1e-12})  # rotary, RMSNorm, 2 kv heads
    attention, seen = model.model.layers[0].attn, {}
    attention.c_attn.register_forward_hook(lambda _, args, output: seen.update(projected=output))
    for name in ("q_norm", "k_norm"):
        getattr(attention, name).register_forward_hook(
            lambda _, args, output, name=name: seen.update({name: (args[0], output)}))
    model(random_ids())
    query, key, _ = seen["projected"].split(attention.split_sizes, dim=-1)  # (B, T, C), (B, T, Ckv)
    for name, projected, heads in (("q_norm", query, HEADS), ("k_norm", key, 2)):
        normed_in, normed_out = seen[name]
        # it sees the projection itself, head by head (B, heads, T, hs): not yet rotated
        assert torch.equal(normed_in, projected.view(2, 10, heads, -1).transpose(1, 2))
        # and gives every head's vector unit root mean square (its scale starts at one)
        torch.testing.assert_close(normed_out.pow(2).mean(-1), torch.ones(2, heads, 10))
    assert attention.q_norm.weight.shape == attention.k_norm.weight.shape == (HIDDEN // HEADS,)


@pytest.mark.parametrize("mlp_type", ["standard", "gated"])
def test_relu2_is_primers_squared_relu(mlp_type):
    mlp = tiny_model(hidden_act="relu2", mlp_type=mlp_type).model.layers[0].mlp
    x = torch.randn(2, 5, HIDDEN, generator=torch.Generator().manual_seed(0))
    hidden = mlp.c_fc(x)
    if mlp_type == "gated":
        gate, up = hidden.chunk(2, dim=-1)
        expected = mlp.c_proj(torch.relu(gate).square() * up)
    else:
        expected = mlp.c_proj(torch.relu(hidden).square())
    torch.testing.assert_close(mlp(x), expected, atol=0, rtol=0)


def test_logit_softcap_bounds_the_logits_smoothly_in_the_loss_and_in_generation():
    capped = tiny_model(logit_softcap=0.2)  # below these logits' largest magnitudes (about 0.6)
    uncapped = same_weights(capped)
    input_ids = random_ids()
    raw = uncapped(input_ids).logits
    out = capped(input_ids, labels=input_ids)
    torch.testing.assert_close(out.logits, 0.2 * torch.tanh(raw / 0.2))
    assert out.logits.abs().max() < 0.2 < raw.abs().max()
    targets = input_ids[:, 1:].reshape(-1)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB),
                                                                           targets))
    generated = greedy(capped, input_ids, output_logits=True, return_dict_in_generate=True)
    torch.testing.assert_close(generated.logits[0], out.logits[:, -1])
    with pytest.raises(ValueError, match="logit_softcap must be 0"):
        tiny_model(logit_softcap=-1.0)


def test_zero_initialised_output_projections_make_every_block_start_as_the_identity(arch):
    model = tiny_model(zero_init_output_projections=True, **arch).train()
    for layer in model.model.layers:
        assert not layer.attn.c_proj.weight.any() and not layer.mlp.c_proj.weight.any()
        assert layer.attn.c_attn.weight.std() > 0.01 and layer.mlp.c_fc.weight.std() > 0.01  # the rest as before
    input_ids = random_ids()
    out = model(input_ids, labels=input_ids, output_hidden_states=True)
    embeddings, *block_outputs, final = out.hidden_states
    assert all(torch.equal(hidden, embeddings) for hidden in block_outputs)
    torch.testing.assert_close(final, model.model.ln_f(embeddings))
    out.loss.backward()  # the projections learn from the first step on
    assert all(layer.attn.c_proj.weight.grad.any() and layer.mlp.c_proj.weight.grad.any()
               for layer in model.model.layers)



# Document masking: a packed block's documents kept apart.
EOS = 3


def document(length: int, seed: int) -> torch.Tensor:
    """A document's ids without an end-of-text token inside."""
    ids = random_ids(1, length, seed)[0]
    return ids.masked_fill(ids == EOS, EOS + 1)


def test_document_positions_restart_after_each_end_of_text_token():
    input_ids = torch.tensor([[5, EOS, 7, 8, EOS, EOS, 9], [EOS, 4, 4, 4, 4, 4, EOS]])
    assert document_position_ids(input_ids, EOS).tolist() == [[0, 1, 0, 1, 2, 0, 0], [0, 0, 1, 2, 3, 4, 5]]
    with pytest.raises(ValueError, match="document_masking needs eos_token_id"):
        tiny_model(document_masking=True)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("positions", ["absolute", "rotary"])
def test_a_document_in_a_packed_block_computes_what_it_computes_alone(positions, attn_implementation):
    masked = tiny_model(attn_implementation, position_embedding_type=positions, eos_token_id=EOS,
                        document_masking=True)
    second = torch.cat([document(7, seed=2), torch.tensor([EOS])])  # a whole document, its EOS included
    eos = torch.tensor([EOS])
    packed = torch.stack([torch.cat([document(5, seed=1), eos, second, document(4, seed=3)]),  # at 6..13
                          torch.cat([document(2, seed=4), eos, second, document(7, seed=5)])])  # at 3..10
    alone = masked(second[None], use_cache=False).logits[0]  # (8, V)
    unmasked = same_weights(masked, position_embedding_type=positions, eos_token_id=EOS)
    for model, leaks in ((masked, False), (unmasked, True)):
        logits = model(packed, use_cache=False).logits
        for row, start in ((0, 6), (1, 3)):
            inside = logits[row, start:start + len(second)]
            if leaks:  # without masking the document attends to the one before it
                assert (inside - alone).abs().max() > 1e-3
            else:
                torch.testing.assert_close(inside, alone, atol=1e-5, rtol=1e-5)


def test_generation_is_unchanged_by_document_masking():
    # generate() passes positions and a mask, so a prompt holding an end-of-text token continues as without
    # masking, with the cache or without
    masked = tiny_model(eos_token_id=EOS, document_masking=True, **ARCHITECTURES["gpt2"])
    unmasked = same_weights(masked, eos_token_id=EOS, **ARCHITECTURES["gpt2"])
    prompt = torch.cat([document(4, seed=1), torch.tensor([EOS]), document(5, seed=2)])[None]
    for use_cache in (True, False):
        options = {"use_cache": use_cache, "output_logits": True, "return_dict_in_generate": True}
        ours, theirs = greedy(masked, prompt, **options), greedy(unmasked, prompt, **options)
        assert torch.equal(ours.sequences, theirs.sequences)
        assert all(torch.equal(mine, other) for mine, other in zip(ours.logits, theirs.logits, strict=True))


def test_only_a_bare_forward_without_a_cache_is_masked():
    # with a cache, an attention mask or positions a forward is not a packed block, and computes as without masking
    # (positions restarted by the model would otherwise come without the mask that create_causal_mask skips then)
    masked = tiny_model(eos_token_id=EOS, document_masking=True, **ARCHITECTURES["gpt2"])
    unmasked = same_weights(masked, eos_token_id=EOS, **ARCHITECTURES["gpt2"])
    packed = torch.cat([document(4, seed=1), torch.tensor([EOS]), document(5, seed=2)])[None]
    for options in ({}, {"use_cache": False, "attention_mask": torch.ones_like(packed)},
                    {"use_cache": False, "position_ids": torch.arange(10)[None]}):
        assert torch.equal(masked(packed, **options).logits, unmasked(packed, **options).logits), options
    assert not torch.equal(masked(packed, use_cache=False).logits, unmasked(packed, use_cache=False).logits)


@pytest.mark.slow  # compiling takes tens of seconds on a CPU
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_document_masking_compiles_to_the_same_logits(attn_implementation):
    model = tiny_model(attn_implementation, eos_token_id=EOS, document_masking=True, **ARCHITECTURES["llama"])
    packed = torch.cat([document(5, seed=1), torch.tensor([EOS]), document(9, seed=2)])[None]
    expected = model(packed, use_cache=False).logits
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=False)
    torch.testing.assert_close(compiled(packed, use_cache=False).logits, expected, atol=1e-5, rtol=1e-5)
