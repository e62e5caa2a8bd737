output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "availability_zones" {
  description = "Availability zones that hold the subnets, in subnet order."
  value       = local.availability_zones
}

output "public_subnet_ids" {
  description = "IDs of the public subnets, one per availability zone. What uses them waits for their routes (internet gateway, S3 endpoint), so an instance launched into one reaches S3 from its first boot."
  value       = aws_subnet.public[*].id
  depends_on  = [aws_route.public_internet, aws_route_table_association.public, aws_vpc_endpoint.s3]
}

output "s3_endpoint_id" {
  description = "ID of the S3 gateway endpoint on the subnets' route tables."
  value       = aws_vpc_endpoint.s3.id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (empty unless enable_private_subnets). What uses them waits for their routes (NAT gateway, S3 endpoint), so an instance launched into one reaches the internet from its first boot."
  value       = aws_subnet.private[*].id
  depends_on  = [aws_route.private_nat, aws_route_table_association.private, aws_vpc_endpoint.s3]
}

output "nat_gateway_id" {
  description = "ID of the NAT gateway, or null when enable_nat_gateway is false."
  value       = try(aws_nat_gateway.this[0].id, null)
}
