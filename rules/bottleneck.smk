# rules of the bottleneck stage (owned by its issue); see rules/common.smk for path helpers
