"""Offline stand-in for the hashicorp/aws Terraform provider (see docs/DEVELOPMENT.md)."""
