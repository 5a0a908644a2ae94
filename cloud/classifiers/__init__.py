"""Region classifiers of the cloud service, and the local vLLM server they can talk to."""
