bucket_name   = "llm-dev-123456789012-us-east-1"
kms_key_arn   = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
force_destroy = false
scripts = {
  "scripts/main-setup.sh" = "#!/bin/bash\necho setup\n"
}
