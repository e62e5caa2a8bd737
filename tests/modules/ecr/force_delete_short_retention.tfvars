name                  = "team/inference-proxy"
image_retention_count = 3
force_delete          = true
tags = {
  Component = "proxy"
}
