"""Dataset preparation: public captioned sets -> captioned image folders autonat reads
(`autonat prepare coco|emoji`)."""
