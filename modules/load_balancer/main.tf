locals {
  # The inference routes (inference_proxy/routes.py: every /v1/ path and vLLM's routes at the
  # root); on plain HTTP they get a JSON 403 and are never redirected, as on the single
  # instance's NGINX. A rule matches at most 5 values, hence two rules.
  # tests/modules/load_balancer/test_load_balancer_plan.py holds the list to routes.py.
  api_path_patterns = [
    ["/v1/*", "/tokenize", "/detokenize", "/pooling", "/score"],
    ["/rerank", "/v2/rerank", "/classify"],
  ]
  https_required = jsonencode({
    error = {
      message = "This API is served over HTTPS only: use https://${coalesce(var.hostname, "-")}. A key sent over plain HTTP should be treated as exposed."
      type    = "invalid_request_error"
      param   = null
      code    = "https_required"
    }
  })
  # Load balancer and target group names: at most 32 characters, no hyphen at the end.
  short_name = trimsuffix(substr(var.name, 0, 26), "-")
}

# --- security groups: the internet reaches the load balancer, only it reaches instances ---

resource "aws_security_group" "this" {
  name_prefix = "${var.name}-alb-"
  description = "Load balancer of ${var.name}: HTTPS and HTTP from allowed_cidr_blocks, out only to the instances' NGINX"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-alb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  for_each = toset(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "HTTPS from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "http" {
  #checkov:skip=CKV_AWS_260:Port 80 only redirects to HTTPS and answers API routes with a JSON 403 (listener rules); nothing is served over it. The CIDRs are allowed_cidr_blocks, the user's choice.
  for_each = toset(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "HTTP from ${each.value} (redirect and JSON 403 only)"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "instances" {
  security_group_id            = aws_security_group.this.id
  description                  = "To the instances' NGINX"
  referenced_security_group_id = var.instance_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 80
  to_port                      = 80
}

resource "aws_vpc_security_group_ingress_rule" "instances_from_load_balancer" {
  #checkov:skip=CKV_AWS_260:False positive: the source is the load balancer's security group (referenced_security_group_id), not a CIDR; nothing but the load balancer reaches port 80 of the instances.
  security_group_id            = var.instance_security_group_id
  description                  = "HTTP from the load balancer only"
  referenced_security_group_id = aws_security_group.this.id
  ip_protocol                  = "tcp"
  from_port                    = 80
  to_port                      = 80
}

# --- the load balancer -------------------------------------------------------------------

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:Access logs would need a log bucket with its own policy and lifecycle; NGINX and the proxy on every instance log each request with its X-Request-ID.
  #checkov:skip=CKV_AWS_150:Deletion protection would make `terraform destroy` fail; the load balancer holds no data and is recreated by an apply.
  #checkov:skip=CKV2_AWS_28:WAF is optional (enable_waf, modules/waf): the API requires a key on every route, and managed rule sets cost per request.
  name               = "${local.short_name}-alb"
  load_balancer_type = "application"
  internal           = false
  security_groups    = [aws_security_group.this.id]
  subnets            = var.subnet_ids

  # Streams must not be cut: the longest silence of a request is the proxy's budget before
  # the first token, plus NGINX's margin.
  idle_timeout               = var.idle_timeout
  drop_invalid_header_fields = true
  enable_deletion_protection = false

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    precondition {
      condition     = length(var.subnet_ids) >= 2
      error_message = "deployment_mode = \"autoscaling\" needs subnets in at least two availability zones for the load balancer: set az_count >= 2 (and availability_zones, if given, to two zones that offer the instance type)."
    }
  }
}

resource "aws_lb_target_group" "this" {
  name        = "${local.short_name}-tg"
  vpc_id      = var.vpc_id
  target_type = "instance"
  protocol    = "HTTP"
  port        = 80
  # In-flight requests and streams of a deregistering instance may run this long.
  deregistration_delay = var.deregistration_delay

  # /ready answers 200 only once vLLM serves the model, so a new instance takes traffic
  # only then, and one whose vLLM fails leaves the rotation.
  health_check {
    enabled             = true
    protocol            = "HTTP"
    path                = "/ready"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = merge(var.tags, { Name = var.name })
}

# --- certificate: ACM, validated through the zone ----------------------------------------

resource "aws_acm_certificate" "this" {
  domain_name       = var.hostname
  validation_method = "DNS"

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = var.hostname != null
      error_message = "deployment_mode = \"autoscaling\" serves HTTPS from the load balancer with an ACM certificate validated through Route53: set domain_name (a public hosted zone in Route53; route53_zone_id or route53_zone_name if it is named otherwise)."
    }
  }
}

resource "aws_route53_record" "validation" {
  for_each = toset(var.hostname == null ? [] : [var.hostname])

  zone_id = var.zone_id
  name    = one([for option in aws_acm_certificate.this.domain_validation_options : option.resource_record_name if option.domain_name == each.key])
  type    = one([for option in aws_acm_certificate.this.domain_validation_options : option.resource_record_type if option.domain_name == each.key])
  records = [one([for option in aws_acm_certificate.this.domain_validation_options : option.resource_record_value if option.domain_name == each.key])]
  ttl     = 60
  # ACM names the record after the key: a certificate for the same name issued before
  # validates with the same record.
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  certificate_arn         = aws_acm_certificate.this.arn
  validation_record_fqdns = [for record in aws_route53_record.validation : record.fqdn]
}

# --- listeners ---------------------------------------------------------------------------

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  protocol          = "HTTPS"
  port              = 443
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = aws_acm_certificate_validation.this.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }

  tags = var.tags
}

resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2:Port 80 serves nothing: it redirects to HTTPS, and API routes get a JSON 403 (aws_lb_listener_rule.https_required).
  #checkov:skip=CKV_AWS_103:Port 80 terminates no TLS; it only redirects and refuses.
  load_balancer_arn = aws_lb.this.arn
  protocol          = "HTTP"
  port              = 80

  default_action {
    type = "redirect"

    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }

  tags = var.tags
}

# API routes are refused, never redirected: a client following a 301 would already have
# sent its key in clear. The error has the OpenAI shape clients can read.
resource "aws_lb_listener_rule" "https_required" {
  count = length(local.api_path_patterns)

  listener_arn = aws_lb_listener.http.arn
  priority     = 10 + count.index

  condition {
    path_pattern {
      values = local.api_path_patterns[count.index]
    }
  }

  action {
    type = "fixed-response"

    fixed_response {
      status_code  = "403"
      content_type = "application/json"
      message_body = local.https_required
    }
  }

  tags = var.tags
}
