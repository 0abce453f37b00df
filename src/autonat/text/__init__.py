"""Text conditioning: text encoders (`encoders`), prompts -> TextCondition (`conditioner`) and
captioned image folders (`captions`)."""
