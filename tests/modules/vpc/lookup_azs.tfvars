name     = "llm-dev"
az_count = 1
