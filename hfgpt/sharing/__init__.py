"""Showing and sharing a run: its plots (`plots`), the model card of final/ and best/ (`card`), and the Hugging
Face Hub: what a push uploads and how (`hub`), and the uploads in the background of a training run (`pusher`).

May import the ground floor, config, data, runs and inference (for a card's sample); never training. The network
is reached only through `huggingface_hub`, and only from `hub`.
"""
