terraform {
  required_version = ">= 1.7"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

# The only provider configuration of the project: modules inherit it.
provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project     = "ec2-inference"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
