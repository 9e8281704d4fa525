"""Tests of hfgpt/exporters/gguf_file.py: the file transformers' GGUF loader reads back as the same model, its
tokenizer as llama.cpp needs it, the refusals; and (slow, llama-cpp-python) llama.cpp tokenizing and generating
exactly as hfgpt does."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import ModuleType

import gguf
import numpy as np
import pytest
import torch
from export_models import LLAMA, hfgpt_model, prompt, saved
from helpers import PANGRAMS, import_or_unavailable
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from hfgpt.data.tokenization import train_tokenizer
from hfgpt.errors import HfGptError
from hfgpt.exporters import export
from hfgpt.exporters.gguf_file import gguf_vocabulary
from hfgpt.models.hfgpt import HfGptConfig
from hfgpt.models.hfgpt.modeling_hfgpt import HfGptForCausalLM

# compares with what another process or library computes: CI runs it again under another kernel set
pytestmark = pytest.mark.machine_sensitive

FAMILIES = {
    "gpt2": dict(bias=True, hidden_act="gelu_new", num_key_value_heads=2),
    "llama": dict(LLAMA, num_key_value_heads=2),
}
T = gguf.GGMLQuantizationType


def read_back(path: Path, family: str) -> torch.nn.Module:
    """The model transformers' GGUF loader makes of `path`; GPT-2 needs its context passed (PITFALLS)."""
    context = {"n_positions": 48} if family == "gpt2" else {}
    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, **context).eval()


def field(reader: gguf.GGUFReader, name: str):
    return reader.fields[name].contents()


@pytest.mark.parametrize("family", FAMILIES)
def test_transformers_reads_the_f32_file_back_as_the_same_model(family, tmp_path):
    source = saved(tmp_path / "source", **FAMILIES[family])
    path = export(source, "gguf", tmp_path / "model.gguf")
    model = HfGptForCausalLM.from_pretrained(source).eval()
    exported = read_back(path, family)
    assert exported.config.model_type == family
    input_ids = prompt()
    with torch.no_grad():
        torch.testing.assert_close(exported(input_ids).logits, model(input_ids).logits, atol=1e-3, rtol=0)
    assert field(gguf.GGUFReader(path), "general.architecture") == family


@pytest.mark.parametrize(("dtype", "weights", "file_type", "tolerance"), [
    ("f16", T.F16, gguf.LlamaFileType.MOSTLY_F16, 0.01),
    ("q8_0", T.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0, 0.05),
])
@pytest.mark.parametrize("family", FAMILIES)
def test_smaller_dtypes_keep_norms_biases_and_positions_in_f32(family, dtype, weights, file_type, tolerance,
                                                              tmp_path):
    source = saved(tmp_path / "source", **FAMILIES[family])
    path = export(source, "gguf", tmp_path / "model.gguf", dtype=dtype)
    reader = gguf.GGUFReader(path)
    assert field(reader, "general.file_type") == file_type
    for tensor in reader.tensors:
        kept = len(tensor.shape) == 1 or tensor.name == "position_embd.weight"
        assert tensor.tensor_type == (T.F32 if kept else weights), tensor.name
    # the loader dequantizes; the logits move by a small fraction of their range
    input_ids = prompt()
    with torch.no_grad():
        expected = HfGptForCausalLM.from_pretrained(source).eval()(input_ids).logits
        error = (read_back(path, family)(input_ids).logits - expected).abs().max()
    assert error < tolerance * expected.abs().max(), (error, expected.abs().max())


def test_the_tokenizer_goes_inside_as_gpt2_byte_level_bpe(tmp_path):
    source = saved(tmp_path / "source", **FAMILIES["llama"])
    path = export(source, "gguf", tmp_path / "model.gguf")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(source)
    reader = gguf.GGUFReader(path)
    assert (field(reader, "tokenizer.ggml.model"), field(reader, "tokenizer.ggml.pre")) == ("gpt2", "gpt-2")
    tokens = field(reader, "tokenizer.ggml.tokens")
    assert tokens[:len(tokenizer)] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert tokens[len(tokenizer):] == [f"[PAD{i}]" for i in range(len(tokenizer), 300)]  # model rows beyond it
    types = field(reader, "tokenizer.ggml.token_type")
    assert [types[i] for i in tokenizer.all_special_ids] == [gguf.TokenType.CONTROL] * len(tokenizer.all_special_ids)
    assert types[len(tokenizer):] == [gguf.TokenType.UNUSED] * (300 - len(tokenizer))
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    assert field(reader, "tokenizer.ggml.merges") == [m if isinstance(m, str) else " ".join(m) for m in merges]
    ids = {name: field(reader, f"tokenizer.ggml.{name}_token_id") for name in ("bos", "eos", "padding", "unknown")}
    assert ids == {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "padding": tokenizer.pad_token_id,
                   "unknown": tokenizer.unk_token_id}
    assert field(reader, "tokenizer.ggml.add_bos_token") is False  # hfgpt never adds one on encode


def test_a_char_vocabulary_is_spelled_in_bytes_with_merges_that_rebuild_each_character():
    tokenizer = train_tokenizer("char", ["ab é日"])
    tokens, types, merges = gguf_vocabulary(tokenizer, vocab_size=len(tokenizer) + 1)
    # GPT-2's byte alphabet: space is Ġ, é is bytes C3 A9 (Ã ©), 日 is E6 97 A5 (æ Ĺ ¥)
    assert tokens == ["<|endoftext|>", "<|pad|>", "<|unk|>", "Ġ", "a", "b", "Ã©", "æĹ¥", "[PAD8]"]
    assert merges == ["Ã ©", "æ Ĺ", "æĹ ¥"]
    assert types == [gguf.TokenType.CONTROL] * 3 + [gguf.TokenType.NORMAL] * 5 + [gguf.TokenType.UNUSED]


def test_a_char_vocabulary_of_ascii_text_loads_in_llama_cpp(tmp_path, monkeypatch):
    """Single-byte characters need no merges, but llama.cpp refuses a BPE vocabulary without any (Tiny
    Shakespeare's char model failed to load): the file holds one that never applies, and tokenizes as hfgpt."""
    llama_cpp = import_or_unavailable("llama_cpp")
    folder = tmp_path / "ascii"
    hfgpt_model(**LLAMA).save_pretrained(folder)
    tokenizer = train_tokenizer("char", PANGRAMS)
    tokenizer.save_pretrained(folder)
    path = export(folder, "gguf", tmp_path / "ascii.gguf")
    assert field(gguf.GGUFReader(path), "tokenizer.ggml.merges") == ["<|endoftext|> <|endoftext|>"]
    llm = llama_cpp_model(llama_cpp, path, monkeypatch)
    try:
        for text in PANGRAMS:
            assert llm.tokenize(text.encode(), add_bos=False, special=False) == tokenizer.encode(text)
    finally:
        llm.close()


def word_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<|endoftext|>": 0, "<|unk|>": 1, "hello": 2, "world": 3}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<|unk|>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", unk_token="<|unk|>")


def test_refusals_name_what_prevents_the_export(tmp_path):
    with pytest.raises(HfGptError, match=r"llama.cpp's llama computes its MLP with silu, not hidden_act='gelu'; "
                                         r"export with --to llama"):
        export(saved(tmp_path / "gelu-llama", tokenizer=False, **dict(LLAMA, hidden_act="gelu")), "gguf",
               tmp_path / "a.gguf")
    with pytest.raises(HfGptError, match=r"GPT-2 has no gated MLP \(mlp_type='gated'\), and no stock architecture"):
        export(saved(tmp_path / "mixture", tokenizer=False, mlp_type="gated", hidden_act="silu"), "gguf",
               tmp_path / "b.gguf")
    with pytest.raises(HfGptError, match=r"Cannot export to gguf: neither GPT-2 nor Llama has QK-norm "
                                         r"\(qk_norm=True\)"):
        export(saved(tmp_path / "qk-norm", tokenizer=False, **dict(LLAMA, qk_norm=True)), "gguf", tmp_path / "e.gguf")
    with pytest.raises(HfGptError, match=r"Cannot export to gguf: neither GPT-2 nor Llama has logit soft-capping"):
        export(saved(tmp_path / "softcap", tokenizer=False, logit_softcap=15.0), "gguf", tmp_path / "f.gguf")
    with pytest.raises(HfGptError, match=r"llama.cpp's gpt2 computes its MLP with gelu_new or gelu_pytorch_tanh, not "
                                         r"hidden_act='relu2'"):
        export(saved(tmp_path / "relu2", tokenizer=False, hidden_act="relu2"), "gguf", tmp_path / "g.gguf")
    with pytest.raises(HfGptError, match="without a tokenizer"):
        export(saved(tmp_path / "bare", tokenizer=False, **LLAMA), "gguf", tmp_path / "c.gguf")
    with pytest.raises(HfGptError, match="--dtype bf16 is not available for --to gguf; choose one of: f32, f16, q8_0"):
        export(tmp_path / "bare", "gguf", tmp_path / "d.gguf", dtype="bf16")
    with pytest.raises(HfGptError, match="neither GPT-2's byte-level BPE nor one token per character"):
        gguf_vocabulary(word_tokenizer(), vocab_size=4)
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*"))


TEXT = "".join(f"{line}\n" for line in PANGRAMS) + "Café naïve, 日本 😀!\n"
CASES = {  # family, tokenizer, options on top of the family's
    "gpt2-bpe": ("gpt2", "bpe", {}),
    "llama-bpe": ("llama", "bpe", {}),
    "llama-char": ("llama", "char", {}),
    # hfgpt's default activation, exact GELU, which llama.cpp computes with the tanh approximation
    "gpt2-char-exact-gelu": ("gpt2", "char", {"hidden_act": "gelu"}),
}


def trained(folder: Path, family: str, kind: str, options: dict, steps: int = 300) -> Path:
    """A tiny model trained to recite TEXT, saved with its tokenizer: peaked logits, so that greedy tokens do
    not hang on the last bits of float arithmetic that differ between llama.cpp and torch."""
    tokenizer = train_tokenizer(kind, [TEXT], vocab_size=300)
    stream = torch.tensor(tokenizer.encode(TEXT * 40))
    torch.manual_seed(0)
    model = HfGptForCausalLM(HfGptConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **{**FAMILIES[family], **options}))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        starts = torch.randint(len(stream) - 64, (8,), generator=generator)
        batch = torch.stack([stream[start:start + 64] for start in starts])
        model(batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def llama_cpp_model(llama_cpp: ModuleType, path: Path, monkeypatch: pytest.MonkeyPatch):
    """llama.cpp's model of `path`, without the weight repacking of "extra buffer types": its AMX matmul
    segfaults on some CPUs (ggml-org/llama.cpp#20824; on this machine kind with q8_0 weights), and
    llama-cpp-python's `Llama` has no argument for it, so its default model parameters are patched."""
    defaults = llama_cpp.llama_cpp.llama_model_default_params

    def without_repacking():
        params = defaults()
        params.use_extra_bufts = False
        return params

    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_model_default_params", without_repacking)
    return llama_cpp.Llama(model_path=str(path), n_ctx=64, logits_all=True, n_threads=2, verbose=False)


def llama_cpp_greedy(llm, prompt_ids: list[int], new_tokens: int) -> list[int]:
    """Greedy decoding in llama.cpp: the argmax of its logits, one token at a time, through its KV cache."""
    llm.reset()
    llm.eval(prompt_ids)
    generated = []
    for _ in range(new_tokens):
        generated.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval(generated[-1:])
    return generated


@pytest.fixture(scope="module")
def recited(tmp_path_factory: pytest.TempPathFactory):
    """trained() once per case: its f32 and q8_0 exports read the same model."""
    models: dict[str, Path] = {}

    def model_of(case: str) -> Path:
        if case not in models:
            models[case] = trained(tmp_path_factory.mktemp(case), *CASES[case])
        return models[case]
    return model_of


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["f32", "q8_0"])
@pytest.mark.parametrize("case", CASES)
def test_llama_cpp_tokenizes_and_generates_what_hfgpt_does(case, dtype, recited, tmp_path, monkeypatch):
    llama_cpp = import_or_unavailable("llama_cpp")
    options = CASES[case][2]
    source = recited(case)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = export(source, "gguf", tmp_path / "model.gguf", dtype=dtype)
    approximated = [w for w in caught if "tanh approximation" in str(w.message)]
    assert len(approximated) == (options.get("hidden_act") == "gelu"), [str(w.message) for w in caught]
    tokenizer = PreTrainedTokenizerFast.from_pretrained(source)
    model = HfGptForCausalLM.from_pretrained(source).eval()
    text, new_tokens = "Café naïve, 日本", 40
    prompt_ids = tokenizer.encode(text)
    generated = model.generate(torch.tensor([prompt_ids]), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                               do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, len(prompt_ids):].tolist()
    with torch.no_grad():  # the precondition of a fair comparison: no near-ties on the greedy path
        top2 = model(torch.tensor([prompt_ids + generated[:-1]])).logits[0, len(prompt_ids) - 1:].topk(2).values
    assert (top2[:, 0] - top2[:, 1]).min() > 0.5, "the model is not trained enough for a fair comparison"

    llm = llama_cpp_model(llama_cpp, path, monkeypatch)
    try:
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == prompt_ids
        assert llm.tokenize(TEXT.encode(), add_bos=False, special=False) == tokenizer.encode(TEXT)
        assert llama_cpp_greedy(llm, prompt_ids, new_tokens) == generated
        assert llm.detokenize(generated).decode() == tokenizer.decode(generated)
    finally:
        llm.close()
