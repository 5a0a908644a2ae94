"""The one-command demo: the whole loop on one machine (``seamline demo``), and the line monitor it watches
with, which the end-to-end benchmark reuses."""
