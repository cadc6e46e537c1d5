print("policyprune")
