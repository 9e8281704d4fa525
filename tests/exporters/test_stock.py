"""Tests of hfgpt/exporters (gpt2.py, llama.py, families.py and the dispatcher): stock transformers folders
that compute what the hfgpt model computes, and the sentences that refuse a model without a stock equivalent."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from export_models import LLAMA, hfgpt_model, prompt, saved
from helpers import PANGRAMS
from no_hfgpt import run_without_hfgpt
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, GPT2LMHeadModel, LlamaForCausalLM

from hfgpt.data.tokenization import train_tokenizer
from hfgpt.errors import HfGptError
from hfgpt.exporters import export, stock_model
from hfgpt.models.hfgpt.modeling_hfgpt import HfGptForCausalLM, document_position_ids

# compares with what another process or library computes: CI runs it again under another kernel set
pytestmark = pytest.mark.machine_sensitive

# Each family with and without the options its export has to translate: biases (zero ones for GPT-2),
# grouped-query attention (repeated heads for GPT-2), an untied head, exact or tanh GELU; and the options that
# carry over as they are: squared ReLU (transformers' ACT2FN computes it in the stock models too), and document
# masking (a training behaviour, see test_a_stock_export_keeps_documents_apart_given_their_positions).
GPT2_VARIANTS = {
    "gpt2": dict(bias=True, hidden_act="gelu_new"),
    "exact-gelu-no-bias": dict(hidden_act="gelu", bias=False),
    "gqa-untied": dict(bias=True, hidden_act="gelu_new", num_key_value_heads=2, tie_word_embeddings=False),
    "relu2-document-masking": dict(bias=True, hidden_act="relu2", document_masking=True),
}
LLAMA_VARIANTS = {
    "llama-gqa": dict(LLAMA, num_key_value_heads=2),
    "bias-untied-mqa": dict(LLAMA, bias=True, num_key_value_heads=1, tie_word_embeddings=False, rope_theta=500.0),
    "relu2-glu-document-masking": dict(LLAMA, hidden_act="relu2", num_key_value_heads=2, document_masking=True),
}


def assert_same_model(exported: torch.nn.Module, model: HfGptForCausalLM) -> None:
    """Equal fp32 logits (1e-5) and equal greedy tokens."""
    input_ids = prompt()
    with torch.no_grad():
        torch.testing.assert_close(exported(input_ids).logits, model(input_ids).logits, atol=1e-5, rtol=1e-5)
    options = {"max_new_tokens": 16, "do_sample": False, "pad_token_id": 1}
    assert torch.equal(exported.generate(input_ids, **options), model.generate(input_ids, **options))


@pytest.mark.parametrize("options", GPT2_VARIANTS.values(), ids=GPT2_VARIANTS)
def test_gpt2_export_computes_what_hfgpt_computes(options, tmp_path):
    source = saved(tmp_path / "source", **options)
    output = export(source, "gpt2", tmp_path / "gpt2")
    config = json.loads((output / "config.json").read_text())
    assert (config["model_type"], config["activation_function"], config["n_positions"]) == (
        "gpt2", options["hidden_act"], 48)
    exported = AutoModelForCausalLM.from_pretrained(output).eval()
    assert type(exported) is GPT2LMHeadModel
    tied = exported.lm_head.weight.data_ptr() == exported.transformer.wte.weight.data_ptr()
    assert tied == options.get("tie_word_embeddings", True)
    assert_same_model(exported, HfGptForCausalLM.from_pretrained(source).eval())
    assert (output / "tokenizer.json").is_file()


@pytest.mark.parametrize("options", LLAMA_VARIANTS.values(), ids=LLAMA_VARIANTS)
def test_llama_export_computes_what_hfgpt_computes(options, tmp_path):
    source = saved(tmp_path / "source", **options)
    output = export(source, "llama", tmp_path / "llama")
    exported = AutoModelForCausalLM.from_pretrained(output).eval()
    assert type(exported) is LlamaForCausalLM
    assert exported.config.num_key_value_heads == options["num_key_value_heads"]
    assert exported.config.attention_bias == exported.config.mlp_bias == options.get("bias", False)
    assert_same_model(exported, HfGptForCausalLM.from_pretrained(source).eval())


@pytest.mark.parametrize(("target", "options"), [("gpt2", GPT2_VARIANTS["relu2-document-masking"]),
                                                 ("llama", LLAMA_VARIANTS["relu2-glu-document-masking"])])
def test_a_stock_export_keeps_documents_apart_given_their_positions(target, options):
    # a stock model computes without document masking from the ids alone, and with it from positions that restart
    # after each end-of-text token (transformers reads restarting positions as packed sequences)
    model = hfgpt_model(**options)
    stock = stock_model(model, target)
    packed = prompt(18)
    packed[:, [4, 11]] = model.config.eos_token_id
    positions = document_position_ids(packed, model.config.eos_token_id)
    with torch.no_grad():
        expected = model(packed, use_cache=False).logits
        torch.testing.assert_close(stock(packed, position_ids=positions, use_cache=False).logits, expected,
                                   atol=1e-5, rtol=1e-5)
        assert (stock(packed, use_cache=False).logits - expected).abs().max() > 1e-2


def test_a_bias_free_model_exports_zero_biases_to_gpt2():
    state = stock_model(hfgpt_model(hidden_act="gelu_new"), "gpt2").state_dict()
    biases = [name for name in state if name.endswith(".bias")]
    assert len(biases) == 2 * (4 + 2) + 1  # 2 blocks of 4 projections and 2 norms, the final norm
    assert all(not state[name].any() for name in biases)


@pytest.mark.parametrize(("dtype", "torch_dtype"), [("f16", torch.float16), ("bf16", torch.bfloat16)])
def test_dtype_casts_the_weights_and_says_so_in_the_config(dtype, torch_dtype, tmp_path):
    source = saved(tmp_path / "source", **LLAMA)
    output = export(source, "llama", tmp_path / "llama", dtype=dtype)
    assert json.loads((output / "config.json").read_text())["dtype"] == str(torch_dtype).removeprefix("torch.")
    assert {tensor.dtype for tensor in load_file(output / "model.safetensors").values()} == {torch_dtype}
    exported = AutoModelForCausalLM.from_pretrained(output).eval()
    assert exported.dtype == torch_dtype
    input_ids = prompt()
    with torch.no_grad():
        expected = HfGptForCausalLM.from_pretrained(source).eval()(input_ids).logits
        torch.testing.assert_close(exported(input_ids).logits.float(), expected, atol=0.1, rtol=0.05)


MIXTURES = {
    # (options, target, words the refusal must contain)
    "learned-swiglu-to-llama": (dict(mlp_type="gated", hidden_act="silu"), "llama",
                                ["Llama has no learned absolute positions (position_embedding_type='absolute')",
                                 "nearest export that works is --to gpt2", "mlp_type='standard'"]),
    "learned-swiglu-to-gpt2": (dict(mlp_type="gated", hidden_act="silu"), "gpt2",
                               ["GPT-2 has no gated MLP (mlp_type='gated')", "--to gpt2 for a model trained with "
                                                                              "mlp_type='standard'"]),
    "rmsnorm-learned-to-llama": (dict(norm_type="rmsnorm"), "llama",
                                 ["Llama has no learned absolute positions (position_embedding_type='absolute') "
                                  "or ungated MLP (mlp_type='standard')", "--to gpt2 for a model trained with "
                                                                          "norm_type='layernorm'"]),
    "llama-to-gpt2": (LLAMA, "gpt2", ["GPT-2 has no rotary positions (position_embedding_type='rotary'), RMSNorm "
                                      "(norm_type='rmsnorm') or gated MLP (mlp_type='gated')",
                                      "this is a Llama model, so export it with --to llama or --to gguf."]),
    "gpt2-to-llama": (dict(), "llama", ["this is a GPT-2 model, so export it with --to gpt2 or --to gguf."]),
    "qk-norm-llama": (dict(LLAMA, qk_norm=True), "llama",
                      ["Cannot export to llama: neither GPT-2 nor Llama has QK-norm (qk_norm=True), so no stock "
                       "architecture computes this model", "loads anywhere with trust_remote_code=True."]),
    "softcap-gpt2": (dict(logit_softcap=15.0), "gpt2",
                     ["Cannot export to gpt2: neither GPT-2 nor Llama has logit soft-capping (logit_softcap=15.0)"]),
    "both-to-gpt2": (dict(LLAMA, qk_norm=True, logit_softcap=30.0), "gpt2",
                     ["has QK-norm (qk_norm=True) or logit soft-capping (logit_softcap=30.0), so"]),
}


@pytest.mark.parametrize(("options", "target", "words"), MIXTURES.values(), ids=MIXTURES)
def test_a_model_without_that_stock_equivalent_is_refused_in_one_sentence(options, target, words, tmp_path):
    source = saved(tmp_path / "source", tokenizer=False, **options)
    with pytest.raises(HfGptError) as refusal:
        export(source, target, tmp_path / "out")
    message = str(refusal.value)
    assert message.count(". ") == 0 and message.endswith("."), message  # one sentence
    for word in words:
        assert word in message, message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("target", "dtype", "words"), [
    ("onnx", "f32", "Unknown export target 'onnx'; choose one of: gpt2, llama, gguf."),
    ("gpt2", "q8_0", "--dtype q8_0 is not available for --to gpt2; choose one of: f32, f16, bf16."),
])
def test_unknown_targets_and_dtypes_are_refused(target, dtype, words, tmp_path):
    with pytest.raises(HfGptError, match=words.replace("(", r"\(").replace(")", r"\)")):
        export(saved(tmp_path / "source", tokenizer=False), target, tmp_path / "out", dtype=dtype)


def test_an_existing_output_is_never_replaced_and_a_failed_export_leaves_nothing(tmp_path):
    source = saved(tmp_path / "source", tokenizer=False, hidden_act="gelu_new")
    (tmp_path / "out").mkdir()
    with pytest.raises(HfGptError, match="already exists"):
        export(source, "gpt2", tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out", "source"]


def test_a_folder_that_is_not_hfgpt_is_refused(tmp_path):
    stock_model(hfgpt_model(hidden_act="gelu_new"), "gpt2").save_pretrained(tmp_path / "gpt2")
    with pytest.raises(HfGptError, match="holds a 'gpt2' model, not an hfgpt one"):
        export(tmp_path / "gpt2", "gpt2", tmp_path / "out")
    with pytest.raises(HfGptError, match="is not a saved model folder"):
        export(tmp_path / "missing", "gpt2", tmp_path / "out")


STOCK_CHILD = textwrap.dedent(
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, expected_path, class_name = sys.argv[1], sys.argv[2], sys.argv[3]
    expected = torch.load(expected_path)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64).eval()  # no trust_remote_code
    assert type(model).__name__ == class_name and type(model).__module__.startswith("transformers.models."), type(model)
    assert "hfgpt" not in sys.modules
    with torch.no_grad():
        torch.testing.assert_close(model(expected["input_ids"]).logits, expected["logits"], atol=1e-5, rtol=1e-5)
    generated = model.generate(expected["input_ids"], max_new_tokens=16, do_sample=False, pad_token_id=1)
    assert torch.equal(generated, expected["generated"]), (generated, expected["generated"])
    assert AutoTokenizer.from_pretrained(folder).encode(expected["text"]) == expected["text_ids"]
    print("STOCK OK", type(model).__module__)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(("target", "options", "class_name"), [
    ("gpt2", GPT2_VARIANTS["gqa-untied"], "GPT2LMHeadModel"),
    ("llama", LLAMA_VARIANTS["llama-gqa"], "LlamaForCausalLM"),
])
def test_an_export_runs_where_hfgpt_cannot_be_imported(target, options, class_name, tmp_path):
    source = saved(tmp_path / "source", **options)
    output = export(source, target, tmp_path / "export")
    assert not any(path.suffix == ".py" for path in output.iterdir())  # no code travels: stock classes only
    assert "auto_map" not in json.loads((output / "config.json").read_text())
    # In float64 on both sides: two processes may choose different fp32 kernels (thread counts, code paths),
    # which moved logits by 9e-5 on a CI machine; in float64 only a wrong export moves them past 1e-5 (Llama's
    # rotary tables are computed in fp32 whatever the dtype: 1e-6).
    model = HfGptForCausalLM.from_pretrained(source, dtype=torch.float64).eval()
    input_ids, text = prompt(), PANGRAMS[0]
    with torch.no_grad():
        logits = model(input_ids).logits
    generated = model.generate(input_ids, max_new_tokens=16, do_sample=False, pad_token_id=1)
    text_ids = train_tokenizer("bpe", PANGRAMS * 5, vocab_size=300).encode(text)
    torch.save({"input_ids": input_ids, "logits": logits, "generated": generated, "text": text,
                "text_ids": text_ids}, tmp_path / "expected.pt")
    result = run_without_hfgpt(tmp_path, STOCK_CHILD, str(output), str(tmp_path / "expected.pt"), class_name)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "STOCK OK transformers.models." in result.stdout
