"""The console's routes, one router per feature; ``create_app`` includes them all."""
