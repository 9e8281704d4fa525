"""Load a trained hfgpt model with plain transformers, as anyone you share the folder with would.

    python examples/use_saved_model.py runs/<run>/final "Once upon a time"

`trust_remote_code=True` makes this work where hfgpt is not installed: the folder carries the model code and an
`auto_map`. Where hfgpt is installed, `import hfgpt` alone is enough.
"""

import sys

from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

if __name__ == "__main__":
    folder, prompt = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "\n"
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, trust_remote_code=True)
    # learned positions end at the model's context: prompt and continuation must fit in it
    room = model.config.max_position_embeddings - len(tokenizer(prompt)["input_ids"])
    output = generator(prompt, max_new_tokens=min(100, room), do_sample=True, temperature=0.8, top_k=40)
    print(output[0]["generated_text"])
