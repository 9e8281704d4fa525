"""How a model card tells a reader to load the model: three ways, each a snippet that runs as it is."""

from __future__ import annotations

_WITH_HFGPT = '''import hfgpt  # registers the model type with transformers' Auto classes
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{where}")
tokenizer = AutoTokenizer.from_pretrained("{where}")'''

_REMOTE_CODE = '''from transformers import AutoModelForCausalLM, AutoTokenizer

# the model's code comes with it (modeling_hfgpt.py, configuration_hfgpt.py): hfgpt need not be installed
model = AutoModelForCausalLM.from_pretrained("{where}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{where}")
ids = tokenizer("\\n", return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens=100, do_sample=True)[0]))'''

_PIPELINE = '''from transformers import pipeline

generator = pipeline("text-generation", model="{where}", trust_remote_code=True)
print(generator("\\n", max_new_tokens=100, do_sample=True)[0]["generated_text"])'''


def usage_section(repo_id: str) -> str:
    """The card's "Use it" section, for the Hub repo `repo_id` (or a local folder when it is empty)."""
    where = repo_id or "path/to/this/folder"
    snippets = [("With hfgpt installed", _WITH_HFGPT), ("With `trust_remote_code=True`", _REMOTE_CODE),
                ("With a `pipeline`", _PIPELINE)]
    text = "## Use it\n\n"
    for title, code in snippets:
        text += f"{title}:\n\n```python\n{code.format(where=where)}\n```\n\n"
    return text + f"Or from the command line: `hfgpt generate {where}`.\n"


_STOCK = '''from transformers import AutoModelForCausalLM, AutoTokenizer

# a stock transformers architecture: neither hfgpt nor trust_remote_code is needed
model = AutoModelForCausalLM.from_pretrained("{where}")
tokenizer = AutoTokenizer.from_pretrained("{where}")
ids = tokenizer("\\n", return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens=100, do_sample=True)[0]))'''


def stock_usage_section(repo_id: str) -> str:
    """The "Use it" section of a model exported to a stock architecture (`hfgpt export --to gpt2|llama`)."""
    return f"## Use it\n\n```python\n{_STOCK.format(where=repo_id or 'path/to/this/folder')}\n```\n"


def gguf_usage_section(repo_id: str, filename: str) -> str:
    """The "Use it" section of a GGUF file (`hfgpt export --to gguf`): llama.cpp, or transformers' GGUF loader."""
    return (f"## Use it\n\nWith llama.cpp: `llama-cli -hf {repo_id or 'OWNER/NAME'} -p \"Hello\"`, or after a "
            f"download, `llama-cli -m {filename} -p \"Hello\"`.\n\nWith transformers (which dequantizes it):\n\n"
            f"```python\nfrom transformers import AutoModelForCausalLM\n\nmodel = AutoModelForCausalLM.from_pretrained("
            f"\"{repo_id or 'path/to/this/folder'}\", gguf_file=\"{filename}\")\n```\n")
