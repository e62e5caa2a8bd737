# The provider's default_tags do not reach what a launch template launches: they are copied
# onto the instances and volumes here.
data "aws_default_tags" "this" {}

# The AMI's root device name: the launch template overrides the root volume by that name.
data "aws_ami" "launch" {
  filter {
    name   = "image-id"
    values = [var.launch.ami_id]
  }
}

locals {
  instance_tags = merge(data.aws_default_tags.this.tags, var.launch.tags, var.tags)
  spot_types    = distinct(concat([var.launch.instance_type], var.spot.instance_types))
}

resource "aws_launch_template" "this" {
  name_prefix   = "${var.name}-"
  description   = "Instances of the inference endpoint ${var.name} (modules/ec2 renders what they run)"
  image_id      = var.launch.ami_id
  instance_type = var.launch.instance_type
  key_name      = var.launch.key_name
  ebs_optimized = var.launch.ebs_optimized
  # The bootstrap, and after its last line (it ends in exec, so this never runs) the digest
  # of the files it fetches: a new digest is a new version, rolled out by instance refresh.
  user_data              = base64encode("${var.launch.user_data}# scripts ${var.scripts_digest}\n")
  update_default_version = true

  iam_instance_profile {
    arn = var.launch.iam_instance_profile_arn
  }

  network_interfaces {
    device_index                = 0
    associate_public_ip_address = var.associate_public_ip_address
    security_groups             = [var.launch.security_group_id]
    delete_on_termination       = true
  }

  metadata_options {
    http_endpoint               = var.launch.metadata_options.http_endpoint
    http_tokens                 = var.launch.metadata_options.http_tokens
    http_put_response_hop_limit = var.launch.metadata_options.http_put_response_hop_limit
    instance_metadata_tags      = var.launch.metadata_options.instance_metadata_tags
  }

  monitoring {
    enabled = var.launch.monitoring
  }

  block_device_mappings {
    device_name = data.aws_ami.launch.root_device_name

    ebs {
      volume_type           = var.launch.root_volume.volume_type
      volume_size           = var.launch.root_volume.volume_size
      encrypted             = var.launch.root_volume.encrypted
      kms_key_id            = var.launch.root_volume.kms_key_id
      delete_on_termination = var.launch.root_volume.delete_on_termination
    }
  }

  # Each instance has its own model cache (no shared volume): downloaded at its first boot,
  # or synced from model_cache_bucket; it goes with the instance.
  block_device_mappings {
    device_name = var.launch.data_volume.device_name

    ebs {
      volume_type           = var.launch.data_volume.volume_type
      volume_size           = var.launch.data_volume.volume_size
      encrypted             = var.launch.data_volume.encrypted
      kms_key_id            = var.launch.data_volume.kms_key_id
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = local.instance_tags
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.instance_tags
  }

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_autoscaling_group" "this" {
  name                = var.name
  min_size            = var.min_size
  max_size            = var.max_size
  desired_capacity    = var.desired_capacity
  vpc_zone_identifier = var.subnet_ids
  target_group_arns   = [var.target_group_arn]

  # Healthy means the target group's /ready answers 200: vLLM serves the model.
  health_check_type         = "ELB"
  health_check_grace_period = var.health_check_grace_period
  default_instance_warmup   = var.instance_warmup
  # Scale-in: the load balancer drains an instance for its deregistration delay (the
  # longest request) before it is terminated, and the proxy drains on SIGTERM after that.
  termination_policies = ["OldestLaunchTemplate", "OldestInstance"]
  # Spot: launch a replacement as soon as AWS signals an interruption is likely.
  capacity_rebalance = var.spot.enabled

  dynamic "launch_template" {
    for_each = var.spot.enabled ? [] : [aws_launch_template.this]

    content {
      id      = launch_template.value.id
      version = launch_template.value.latest_version
    }
  }

  dynamic "mixed_instances_policy" {
    for_each = var.spot.enabled ? [aws_launch_template.this] : []

    content {
      instances_distribution {
        # The base stays On-Demand whatever Spot does; everything above it is Spot.
        on_demand_base_capacity                  = var.spot.on_demand_base_capacity
        on_demand_percentage_above_base_capacity = 0
        spot_allocation_strategy                 = "price-capacity-optimized"
        spot_max_price                           = var.spot.max_price
      }

      launch_template {
        launch_template_specification {
          launch_template_id = mixed_instances_policy.value.id
          version            = mixed_instances_policy.value.latest_version
        }

        dynamic "override" {
          for_each = local.spot_types

          content {
            instance_type = override.value
          }
        }
      }
    }
  }

  # A new launch template version (new scripts, image or model) replaces the instances in
  # rolling batches; new ones take traffic once /ready answers, old ones drain first.
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = var.min_healthy_percentage
      max_healthy_percentage = min(var.min_healthy_percentage + 100, 200)
      instance_warmup        = var.instance_warmup
      auto_rollback          = true
    }
  }

  # Replacements outside a refresh (health, Spot rebalancing) keep the same floor.
  instance_maintenance_policy {
    min_healthy_percentage = var.min_healthy_percentage
    max_healthy_percentage = min(var.min_healthy_percentage + 100, 200)
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = var.name })

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }

  lifecycle {
    # The scaling policy owns the capacity once the group runs.
    ignore_changes = [desired_capacity]

    precondition {
      condition     = var.min_size <= var.desired_capacity && var.desired_capacity <= var.max_size
      error_message = "min_size (${var.min_size}) <= desired_capacity (${var.desired_capacity}) <= max_size (${var.max_size}) must hold."
    }
    precondition {
      condition     = !var.spot.enabled || var.spot.on_demand_base_capacity <= var.max_size
      error_message = "on_demand_base_capacity (${var.spot.on_demand_base_capacity}) exceeds max_size (${var.max_size})."
    }
  }
}

resource "aws_autoscaling_policy" "load" {
  name                   = "${var.name}-${replace(var.scaling.metric, "_", "-")}"
  autoscaling_group_name = aws_autoscaling_group.this.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    target_value = var.scaling.target

    dynamic "customized_metric_specification" {
      for_each = var.scaling.metric == "in_flight_requests" && var.load_metric != null ? [var.load_metric] : []

      content {
        namespace   = customized_metric_specification.value.namespace
        metric_name = customized_metric_specification.value.name
        statistic   = "Average"
        unit        = "Count"

        dynamic "metric_dimension" {
          for_each = customized_metric_specification.value.dimensions

          content {
            name  = metric_dimension.key
            value = metric_dimension.value
          }
        }
      }
    }

    dynamic "predefined_metric_specification" {
      for_each = var.scaling.metric == "alb_request_count" ? [var.request_count_label] : []

      content {
        predefined_metric_type = "ALBRequestCountPerTarget"
        resource_label         = predefined_metric_specification.value
      }
    }
  }

  lifecycle {
    # The instances' requests in flight reach CloudWatch through the monitoring module's
    # publisher (publish-metrics.py), which runs only with metrics on.
    precondition {
      condition     = var.scaling.metric != "in_flight_requests" || var.load_metric != null
      error_message = "scaling_metric = \"in_flight_requests\" needs enable_monitoring = true: the instances publish their requests in flight with the monitoring module's publisher, which runs only with metrics on. Set enable_monitoring = true, or scale on the load balancer's count with scaling_metric = \"alb_request_count\"."
    }
  }
}
