"""What the built-in taggers share: image analysis, OCR readings, the EM vocabulary, model options. No taggers here."""
