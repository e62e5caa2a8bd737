name = "inference-proxy"
