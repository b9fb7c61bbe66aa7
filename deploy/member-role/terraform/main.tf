# Latchkey member-account role: create it in every member account of an AWS Organization
# (one provider per account, or this module in your account-vending pipeline). It trusts
# only the connector's role. Self-contained (it can be vendored or copied alone): its
# permissions are member-policy.json.tftpl, deploy/member-role/member-policy.json with the
# partition, the tag prefix and the secret name prefix templated in, the same document
# the CloudFormation StackSet (deploy/member-role/stackset.json) carries;
# test/unit/deploy/policy-coverage.test.ts keeps the three identical.

data "aws_partition" "current" {}

locals {
  trust_condition = merge(
    { "aws:PrincipalArn" = var.connector_role_arn },
    var.external_id == "" ? {} : { "sts:ExternalId" = var.external_id },
  )
}

resource "aws_iam_role" "member" {
  name                 = var.member_role_name
  description          = "Assumed by the Latchkey connector to discover and grant access in this account"
  max_session_duration = 3600
  tags                 = merge(var.tags, { "${var.tag_prefix}-protected" = "true" })

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "OnlyTheConnectorRole"
      Effect    = "Allow"
      Principal = { AWS = var.connector_role_arn }
      Action    = ["sts:AssumeRole", "sts:TagSession"]
      Condition = { StringEquals = local.trust_condition }
    }]
  })
}

resource "aws_iam_role_policy" "member" {
  name = "latchkey-member"
  role = aws_iam_role.member.id
  policy = templatefile("${path.module}/member-policy.json.tftpl", {
    tag_prefix         = var.tag_prefix
    partition          = data.aws_partition.current.partition
    secret_name_prefix = var.secret_name_prefix
  })
}
