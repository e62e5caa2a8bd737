output "fqdn" {
  description = "Fully qualified name of the record."
  value       = aws_route53_record.this.fqdn
}

output "zone_id" {
  description = "ID of the hosted zone that holds the record."
  value       = local.zone_id
}

output "record_name" {
  description = "Name of the A record as configured."
  value       = aws_route53_record.this.name
}
