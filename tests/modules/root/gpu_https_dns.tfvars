use_gpu         = true
domain_name     = "example.com"
route53_zone_id = "Z0123456789ABCDEFGHIJ"
enable_https    = true
acme_email      = "ops@example.com"
