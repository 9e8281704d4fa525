"""Using a trained model: sampling text with the KV cache (`generation`).

May import the ground floor, the model and `hfgpt.runs` (to find a saved model); never training.
"""
