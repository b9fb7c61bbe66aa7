# Latchkey member-account role: create it in every member account of an AWS Organization
# (one provider per account, or this module in your account-vending pipeline). It trusts
# only the connector's role; its permissions are ../member-policy.json, the same document
# the CloudFormation StackSet (../stackset.json) carries.

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
  tags                 = merge(var.tags, { "latchkey-protected" = "true" })

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
  name   = "latchkey-member"
  role   = aws_iam_role.member.id
  policy = file("${path.module}/../member-policy.json")
}
