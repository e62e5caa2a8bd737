output "api_endpoint" {
  description = "Base URL of the OpenAI-compatible API (append /v1)."
  value       = module.inference.api_endpoint
}

output "api_key_command" {
  description = "Prints the API key(s) the proxy accepts."
  value       = module.inference.api_key_command
}

output "diagnostic_commands" {
  description = "What to run next: follow the boot, check every service, try a request."
  value       = module.inference.diagnostic_commands
}
