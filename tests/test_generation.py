from hfgpt.generation import generate_text, load_model


def test_a_run_is_sampled_from_its_final_model(trained_run):
    model, _, origin = load_model(trained_run)
    assert origin == str((trained_run / "final").resolve()) and not model.training


def test_samples_run_past_the_context_window(trained_run):
    model, tokenizer, _ = load_model(trained_run)
    context = model.config.max_position_embeddings
    text = generate_text(model, tokenizer, "Pack my", max_new_tokens=3 * context, temperature=0)
    assert text.startswith("Pack my")
    assert len(tokenizer(text)["input_ids"]) == len(tokenizer("Pack my")["input_ids"]) + 3 * context


def test_sampling_is_reproducible_with_a_seed(trained_run):
    model, tokenizer, _ = load_model(trained_run)
    first = generate_text(model, tokenizer, "The", 40, temperature=1.0, top_k=10, top_p=0.95, seed=3)
    again = generate_text(model, tokenizer, "The", 40, temperature=1.0, top_k=10, top_p=0.95, seed=3)
    assert first == again


def test_an_empty_prompt_starts_from_the_bos_token(trained_run):
    model, tokenizer, _ = load_model(trained_run)
    assert len(generate_text(model, tokenizer, "", 10, temperature=0)) > 0
