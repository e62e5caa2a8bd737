zone_id      = "Z0123456789ABCDEFGHIJ"
record_name  = "llm.example.com"
ip_addresses = ["203.0.113.10"]
