# The single instance and what belongs to it alone became conditional (count) when the
# autoscaling mode arrived (deployment_mode); these blocks move an existing deployment's
# state to the new addresses, so it plans no change. Terraform (>= 1.1) would move a
# resource that gains count to [0] by itself; the blocks say so explicitly, and keep saying
# it if count ever becomes for_each.
# tests/modules/root/test_root_moved.py applies the layout before the move and plans this one.

moved {
  from = terraform_data.instance_version
  to   = terraform_data.instance_version[0]
}

moved {
  from = aws_instance.this
  to   = aws_instance.this[0]
}

moved {
  from = aws_ebs_volume.data
  to   = aws_ebs_volume.data[0]
}

moved {
  from = aws_volume_attachment.data
  to   = aws_volume_attachment.data[0]
}

moved {
  from = aws_eip.this
  to   = aws_eip.this[0]
}

moved {
  from = aws_eip_association.this
  to   = aws_eip_association.this[0]
}
