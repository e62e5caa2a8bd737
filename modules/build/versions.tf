terraform {
  required_version = ">= 1.7"

  # No provider: terraform_data and local-exec are built into Terraform, and the AWS
  # login for ECR happens inside tools/build.py (boto3), not through the provider.
}
