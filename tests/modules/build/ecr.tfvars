repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/inference-proxy"
source_dir     = "../../tests/modules/build/context"
aws_region     = "us-east-1"
