output "arn" {
  description = "ARN of the load balancer (the WAF web ACL attaches to it)."
  value       = aws_lb.this.arn
}

output "dns_name" {
  description = "DNS name of the load balancer (the Route53 alias points at it)."
  value       = aws_lb.this.dns_name
}

output "zone_id" {
  description = "Hosted zone ID of the load balancer, for alias records."
  value       = aws_lb.this.zone_id
}

output "target_group_arn" {
  description = "ARN of the target group the Auto Scaling group registers its instances in."
  value       = aws_lb_target_group.this.arn
}

output "request_count_label" {
  description = "Resource label of the ALBRequestCountPerTarget metric (load balancer and target group ARN suffixes)."
  value       = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}"
}

output "security_group_id" {
  description = "ID of the load balancer's security group."
  value       = aws_security_group.this.id
}

output "certificate_arn" {
  description = "ARN of the validated ACM certificate of the HTTPS listener."
  value       = aws_acm_certificate_validation.this.certificate_arn
}
