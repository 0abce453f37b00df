"""Text conditioning: text encoders (`encoders`, `dual_encoder`, `dual_train`), prompts ->
TextCondition (`conditioner`), caption states beside the tokens (`store`) and text-to-image
evaluation (`alignment`). Captioned image folders are read at the data layer (`autonat.captions`)."""
