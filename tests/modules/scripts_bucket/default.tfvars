bucket_name = "llm-dev-123456789012-us-east-1"
scripts = {
  "scripts/main-setup.sh"   = "#!/bin/bash\necho setup\n"
  "scripts/nginx-site.conf" = "server { listen 80; }\n"
}
