zone_name    = "example.com"
record_name  = "llm.example.com"
ip_addresses = ["203.0.113.10"]
ttl          = 300
