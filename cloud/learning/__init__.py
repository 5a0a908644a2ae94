"""Learning: train and evaluate the models from verified data.

``detector_training`` fine-tunes the edge's RT-DETR on COCO data (``augment``, ``coco_data``,
``detection_eval``); ``classifier_training`` teaches a Qwen2.5-VL checkpoint the verdict JSON
(``classifier_data``); ``model_card`` writes what each run produced. ``seamline train`` is the command line.
"""
